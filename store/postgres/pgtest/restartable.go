package pgtest

import "testing"

// Cluster is a throw-away PostgreSQL server of one test's own, which the
// test may stop and start again to see what an outage does: the server
// that every other test shares must never go down under them.
type Cluster struct {
	// URL is the server's postgres database, as user postgres; it stays
	// the same across Stop and Start.
	URL string
	c   *cluster
}

// NewCluster starts a throw-away cluster from the installed server
// binaries, stopped and removed when t ends. Without them it skips t, or
// fails it under CI=true. CONVEYOR_TEST_DATABASE_URL does not replace it:
// a server the tests did not start is not theirs to stop.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("stop the test's PostgreSQL cluster: %v", err)
		}
	})
	return &Cluster{URL: c.url, c: c}
}

// Stop shuts the server down fast, as pg_ctl stop -m fast does: open
// sessions end at once. The data stays for Start.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.c.halt(); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
}

// Start starts the stopped server again on the same data and port, and
// waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.c.run(); err != nil {
		t.Fatalf("start PostgreSQL again: %v", err)
	}
}
