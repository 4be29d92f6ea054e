package api_test

import (
	"os"
	"testing"

	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// TestMain lets pgtest stop the PostgreSQL cluster that the PostgreSQL
// benchmarks may have started.
func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m).Run())
}
