package server_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}
