package engine

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if they leave goroutines behind: the
// engine starts a claim loop, a writer, a lease loop and a goroutine per
// run, and Stop must end them all.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
