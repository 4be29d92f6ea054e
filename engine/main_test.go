package engine

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// TestMain fails the package's tests if they leave goroutines behind: the
// engine starts a claim loop, a writer, a lease loop and a goroutine per
// run, and Stop must end them all. pgtest.Main stops the PostgreSQL
// cluster the tests may have started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}
