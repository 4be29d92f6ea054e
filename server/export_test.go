package server

// Limits returns the node's connection and stream limits, after
// fitting them to the open-file limit.
func (s *Server) Limits() (maxConnections, maxStreams int) {
	return s.cfg.MaxConnections, s.cfg.MaxStreams
}

// OpenFileLimit is openFileLimit.
var OpenFileLimit = openFileLimit

// ConnectionBudget and StreamBudget are connectionBudget and
// streamBudget.
var (
	ConnectionBudget = connectionBudget
	StreamBudget     = streamBudget
)
