package api

// Patterns are the routes s serves behind its access check, as given to
// http.ServeMux ("GET /executions/{id}"): what openapi.yaml must describe.
func (s *Server) Patterns() []string { return s.patterns }
