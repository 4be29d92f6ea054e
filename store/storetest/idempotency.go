package storetest

import (
	"errors"
	"sync"
	"time"

	"github.com/conveyor-run/conveyor"
)

// keyed returns a new execution carrying key, with digest d.
func (f *fixture) keyed(key, digest string) *conveyor.Execution {
	ex := f.newExecution("alpha")
	ex.Idempotency = &conveyor.Idempotency{Key: key, Digest: digest}
	return ex
}

// wantTaken fails unless err is a *KeyTaken for key naming the execution
// or batch want, first used with digest; it returns when the key was
// first used.
func (f *fixture) wantTaken(err error, key, digest, execution, batch string) time.Time {
	f.t.Helper()
	var taken *conveyor.KeyTaken
	if !errors.As(err, &taken) {
		f.t.Fatalf("create with live key %q: error %v, want a *KeyTaken", key, err)
	}
	if taken.Key != key || taken.Digest != digest || taken.ExecutionID != execution || taken.BatchID != batch {
		f.t.Fatalf("KeyTaken = %+v, want key %q digest %q execution %q batch %q", taken, key, digest, execution, batch)
	}
	wantCode(f.t, "KeyTaken", err, conveyor.ECONFLICT)
	return taken.CreatedAt
}

var keyCases = []testCase{
	{"NamesTheFirst", func(f *fixture) {
		first := f.keyed("k-1", "d1")
		f.createExecutions([]*conveyor.Execution{first})
		// The store does not judge the request: a repeat and another
		// request both learn what the key names and create nothing.
		for _, digest := range []string{"d1", "d2"} {
			again := f.keyed("k-1", digest)
			if used := f.wantTaken(f.s.CreateExecution(f.ctx, again), "k-1", "d1", first.ID, ""); !used.Equal(first.CreatedAt) {
				f.t.Errorf("KeyTaken.CreatedAt = %v, want %v", used, first.CreatedAt)
			}
			f.wantNone(again)
		}
		f.createExecutions([]*conveyor.Execution{f.keyed("k-2", "d1")}) // another key is another submission
	}},
	{"AllOrNothing", func(f *fixture) {
		first := f.keyed("k", "d")
		f.createExecutions([]*conveyor.Execution{first})
		plain, again := f.newExecution("alpha"), f.keyed("k", "d")
		f.wantTaken(f.s.CreateExecutions(f.ctx, []*conveyor.Execution{plain, again}), "k", "d", first.ID, "")
		f.wantNone(plain, again)
	}},
	{"RepeatedInOneCall", func(f *fixture) {
		a, b := f.keyed("k", "d"), f.keyed("k", "d")
		wantCode(f.t, "CreateExecutions with one key twice", f.s.CreateExecutions(f.ctx, []*conveyor.Execution{a, b}), conveyor.ECONFLICT)
		f.wantNone(a, b)
		f.createExecutions([]*conveyor.Execution{a}) // nothing of the refused call holds the key
	}},
	{"Expires", func(f *fixture) {
		first := f.keyed("k", "d1")
		f.createExecutions([]*conveyor.Execution{first})
		live := f.keyed("k", "d2")
		live.CreatedAt = first.CreatedAt.Add(conveyor.IdempotencyTTL - time.Microsecond)
		f.wantTaken(f.s.CreateExecution(f.ctx, live), "k", "d1", first.ID, "")
		// A key first used a whole TTL ago is free: the new execution
		// takes it over, and it names that one from then on.
		second := f.keyed("k", "d2")
		second.CreatedAt = first.CreatedAt.Add(conveyor.IdempotencyTTL)
		f.createExecutions([]*conveyor.Execution{second})
		third := f.keyed("k", "d3")
		third.CreatedAt = second.CreatedAt.Add(time.Second)
		f.wantTaken(f.s.CreateExecution(f.ctx, third), "k", "d2", second.ID, "")
	}},
	{"Batches", func(f *fixture) {
		b, es := f.newBatch(3, nil)
		b.Idempotency = &conveyor.Idempotency{Key: "kb", Digest: "db"}
		if err := f.s.CreateBatch(f.ctx, b, es); err != nil {
			f.t.Fatalf("CreateBatch: %v", err)
		}
		b2, es2 := f.newBatch(2, nil)
		b2.Idempotency = &conveyor.Idempotency{Key: "kb", Digest: "db"}
		f.wantTaken(f.s.CreateBatch(f.ctx, b2, es2), "kb", "db", "", b.ID)
		f.wantNone(es2...)
		_, err := f.s.GetBatch(f.ctx, b2.ID)
		wantCode(f.t, "GetBatch of the refused batch", err, conveyor.ENOTFOUND)
		// One namespace of keys: an execution cannot reuse a batch's.
		f.wantTaken(f.s.CreateExecution(f.ctx, f.keyed("kb", "dx")), "kb", "db", "", b.ID)
	}},
	{"ConcurrentRepeats", func(f *fixture) {
		// Every request of a burst with one key comes at once: exactly one
		// creates, and the others learn which.
		f.burst([]conveyor.Store{f.s})
	}},
	{"DeleteExpired", func(f *fixture) {
		var keyed []*conveyor.Execution
		for _, k := range []string{"k1", "k2", "k3"} {
			keyed = append(keyed, f.keyed(k, "d"))
		}
		f.createExecutions(keyed)
		n, err := f.s.DeleteExpiredKeys(f.ctx, keyed[2].CreatedAt, 1)
		if err != nil || n != 1 {
			f.t.Fatalf("DeleteExpiredKeys(limit 1) = %d, %v; want 1", n, err)
		}
		if n, err = f.s.DeleteExpiredKeys(f.ctx, keyed[2].CreatedAt, 10); err != nil || n != 1 {
			f.t.Fatalf("DeleteExpiredKeys = %d, %v; want 1 (k2; k3 is not before the cutoff)", n, err)
		}
		// The deleted keys are free; the kept one is not.
		f.createExecutions([]*conveyor.Execution{f.keyed("k1", "d"), f.keyed("k2", "d")})
		f.wantTaken(f.s.CreateExecution(f.ctx, f.keyed("k3", "d")), "k3", "d", keyed[2].ID, "")
	}},
}

// burst creates 8 executions with one key at once, spread over stores
// (nodes of one database), and fails unless exactly one was created and
// every other create failed naming it.
func (f *fixture) burst(stores []conveyor.Store) {
	f.t.Helper()
	exs := make([]*conveyor.Execution, 8)
	for i := range exs {
		exs[i] = f.keyed("burst", "d")
	}
	errs := make([]error, len(exs))
	var wg sync.WaitGroup
	for i, ex := range exs {
		s := stores[i%len(stores)]
		wg.Go(func() { errs[i] = s.CreateExecution(f.ctx, ex) })
	}
	wg.Wait()
	f.wantOneCreated(exs, errs)
}

// wantOneCreated fails unless exactly one of exs was created (its error
// nil) and every other create failed naming it.
func (f *fixture) wantOneCreated(exs []*conveyor.Execution, errs []error) {
	f.t.Helper()
	winner := ""
	for i, err := range errs {
		if err == nil {
			if winner != "" {
				f.t.Fatalf("two creates with one key succeeded: %s and %s", winner, exs[i].ID)
			}
			winner = exs[i].ID
		}
	}
	if winner == "" {
		f.t.Fatalf("no create with the key succeeded: %v", errs)
	}
	for i, err := range errs {
		if err != nil {
			f.wantTaken(err, exs[i].Idempotency.Key, "d", winner, "")
			f.wantNone(exs[i])
		}
	}
}

var sharedKeyCases = []sharedCase{
	{"ConcurrentRepeatsOnTwoNodes", func(f *sharedFixture) {
		f.burst([]conveyor.Store{f.a, f.b})
	}},
}
