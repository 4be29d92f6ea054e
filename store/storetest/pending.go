package storetest

import "github.com/conveyor-run/conveyor"

var countPendingCases = []testCase{
	{"CountsOnlyPending", func(f *fixture) {
		f.wantPending(10, 0)
		f.createN(3, "alpha")
		_, members := f.createBatch(2, nil)
		f.wantPending(10, 5)

		f.claim(1, at(60)) // running
		f.cancel(members[0].ID, at(61))
		f.wantPending(10, 3)

		// A retry is pending again.
		ex := f.claim(1, at(62))[0].Execution
		f.wantPending(10, 2)
		retry := finalEvent(ex, conveyor.EventRetrying, 2)
		retry.Error = conveyor.Errorf(conveyor.ESTEPFAILED, "flaky")
		f.append(retry)
		f.wantPending(10, 3)
	}},

	{"StopsAtUpTo", func(f *fixture) {
		f.createN(4, "alpha")
		f.wantPending(4, 4)
		f.wantPending(3, 3)
		f.wantPending(1, 1)
		f.wantPending(0, 0)
	}},
}

// wantPending fails unless CountPending(upTo) is want.
func (f *fixture) wantPending(upTo, want int) {
	f.t.Helper()
	n, err := f.s.CountPending(f.ctx, upTo)
	if err != nil {
		f.t.Fatalf("CountPending(%d): %v", upTo, err)
	}
	if n != want {
		f.t.Errorf("CountPending(%d) = %d, want %d", upTo, n, want)
	}
}
