package engine

import (
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// storedIDs returns the id of every execution in s.
func storedIDs(t *testing.T, s conveyor.Store) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	f := conveyor.ListFilter{Limit: conveyor.MaxListLimit}
	for {
		page, err := s.ListExecutions(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range page.Executions {
			ids[ex.ID] = true
		}
		if page.NextCursor == nil {
			return ids
		}
		f.Cursor = *page.NextCursor
	}
}

// queueBehindLeader makes the first of exs lead a commit that blocks in
// the store, queues the others behind it, then lets the commits run. It
// returns each create's error, in the order of exs.
func queueBehindLeader(t *testing.T, c *creator, g *gate, exs []*conveyor.Execution) []error {
	t.Helper()
	errs := make([]error, len(exs))
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = c.create(exs[0]) })
	g.waitEntered(t)
	for i := 1; i < len(exs); i++ {
		wg.Go(func() { errs[i] = c.create(exs[i]) })
	}
	waitUntil(t, "every create to queue", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == len(exs)-1
	})
	g.open()
	wg.Wait()
	return errs
}

// TestCreatorCommitsWhatQueuedInBatches: what queues while a commit runs
// goes into the next commits, at most maxCreateBatch at a time, and each
// submission is stored once.
func TestCreatorCommitsWhatQueuedInBatches(t *testing.T) {
	t.Parallel()
	g := newGate()
	s := &faultStore{Store: openStore(t), createFunc: func([]*conveyor.Execution) error { g.pass(); return nil }}
	c := &creator{store: s}
	exs := make([]*conveyor.Execution, 1+2*maxCreateBatch+7)
	for i := range exs {
		exs[i] = newExecution("p")
	}

	for i, err := range queueBehindLeader(t, c, g, exs) {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
		}
	}

	// The gate makes this deterministic: everything queued behind the
	// leader's commit before it ended, so it is split in full batches.
	calls := s.createCalls()
	var sizes []int
	for _, ids := range calls {
		sizes = append(sizes, len(ids))
	}
	if want := []int{1, maxCreateBatch, maxCreateBatch, 7}; !slices.Equal(sizes, want) {
		t.Fatalf("CreateExecutions batch sizes %v, want %v", sizes, want)
	}
	if calls[0][0] != exs[0].ID {
		t.Errorf("first commit holds %s, want the leader's %s", calls[0][0], exs[0].ID)
	}
	seen := map[string]int{}
	for _, ids := range calls {
		for _, id := range ids {
			seen[id]++
		}
	}
	stored := storedIDs(t, s)
	for _, ex := range exs {
		if seen[ex.ID] != 1 {
			t.Errorf("execution %s went to the store %d times, want once", ex.ID, seen[ex.ID])
		}
		if !stored[ex.ID] {
			t.Errorf("execution %s was not stored", ex.ID)
		}
	}
}

// TestConcurrentSubmitsShareCommits: however the submissions interleave,
// every one is stored, each in exactly one commit of at most
// maxCreateBatch executions. How many commits there are depends on
// scheduling and is not checked.
func TestConcurrentSubmitsShareCommits(t *testing.T) {
	t.Parallel()
	s := &faultStore{Store: openStore(t)}
	// Submit needs no Start: it only stores and nudges.
	e, err := New(Config{Store: s, Pipelines: map[string]*conveyor.Pipeline{"p": {Name: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1500
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ex, err := e.Submit(t.Context(), "p", nil, nil)
			if err != nil {
				t.Errorf("submit %d: %v", i, err)
				return
			}
			ids[i] = ex.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	seen := map[string]int{}
	for _, call := range s.createCalls() {
		if len(call) > maxCreateBatch {
			t.Errorf("a commit of %d executions, over maxCreateBatch %d", len(call), maxCreateBatch)
		}
		for _, id := range call {
			seen[id]++
		}
	}
	stored := storedIDs(t, s)
	if len(stored) != n {
		t.Errorf("%d executions stored, want %d", len(stored), n)
	}
	for _, id := range ids {
		if seen[id] != 1 || !stored[id] {
			t.Errorf("execution %s: in %d commits, stored %v; want one, true", id, seen[id], stored[id])
		}
	}
}

// TestCreatorRetriesRefusedBatchOneByOne: a batch the store refuses as a
// whole because of one execution (ECONFLICT, EINVALID) is retried one
// execution at a time, so only the bad one fails.
func TestCreatorRetriesRefusedBatchOneByOne(t *testing.T) {
	t.Parallel()
	g := newGate()
	s := &faultStore{Store: openStore(t), createFunc: func([]*conveyor.Execution) error { g.pass(); return nil }}
	c := &creator{store: s}

	existing := newExecution("original")
	if err := s.CreateExecution(t.Context(), existing); err != nil {
		t.Fatal(err)
	}
	// Valid as a new execution (ValidateNew does not look at progress),
	// but the store cannot encode it: EINVALID from the store itself.
	nan := math.NaN()
	unencodable := newExecution("p")
	unencodable.Progress = &conveyor.Progress{Percentage: &nan}
	taken := newExecution("taken")
	taken.ID = existing.ID
	twinA, twinB := newExecution("twin-a"), newExecution("twin-b")
	twinB.ID = twinA.ID

	exs := []*conveyor.Execution{newExecution("p"), newExecution("p"), unencodable, newExecution("p"), taken, twinA, twinB, newExecution("p")}
	errs := queueBehindLeader(t, c, g, exs)

	wantCode := map[*conveyor.Execution]string{unencodable: conveyor.EINVALID, taken: conveyor.ECONFLICT}
	for i, ex := range exs {
		if ex == twinA || ex == twinB {
			continue
		}
		if got := conveyor.ErrorCode(errs[i]); got != wantCode[ex] {
			t.Errorf("create %d (%s): %v, want code %q", i, ex.Pipeline, errs[i], wantCode[ex])
		}
	}
	// Which twin wins depends on the order they queued in; one does.
	ia, ib := slices.Index(exs, twinA), slices.Index(exs, twinB)
	codeA, codeB := conveyor.ErrorCode(errs[ia]), conveyor.ErrorCode(errs[ib])
	winner := twinA
	switch {
	case codeA == "" && codeB == conveyor.ECONFLICT:
	case codeB == "" && codeA == conveyor.ECONFLICT:
		winner = twinB
	default:
		t.Errorf("twins with one id: %v and %v, want one stored and one ECONFLICT", errs[ia], errs[ib])
	}

	for i, ex := range exs {
		if errs[i] != nil || ex == twinA || ex == twinB {
			continue
		}
		if _, err := s.GetExecution(t.Context(), ex.ID); err != nil {
			t.Errorf("create %d succeeded but: %v", i, err)
		}
	}
	if _, err := s.GetExecution(t.Context(), unencodable.ID); conveyor.ErrorCode(err) != conveyor.ENOTFOUND {
		t.Errorf("the refused execution: %v, want ENOTFOUND", err)
	}
	if got, err := s.GetExecution(t.Context(), existing.ID); err != nil || got.Pipeline != existing.Pipeline {
		t.Errorf("the existing execution: %+v, %v; want it untouched", got, err)
	}
	if got, err := s.GetExecution(t.Context(), twinA.ID); err != nil || got.Pipeline != winner.Pipeline {
		t.Errorf("the twins' id holds %+v, %v; want the winner %s", got, err, winner.Pipeline)
	}

	// The leader alone, the refused batch of the rest, then each of them.
	calls := s.createCalls()
	want := []int{1, len(exs) - 1}
	for range len(exs) - 1 {
		want = append(want, 1)
	}
	var sizes []int
	for _, ids := range calls {
		sizes = append(sizes, len(ids))
	}
	if !slices.Equal(sizes, want) {
		t.Errorf("CreateExecutions batch sizes %v, want %v", sizes, want)
	}
}

// TestCreatorFailsBatchOnStoreFailure: a failure of the store itself
// (not a refusal of one execution) fails every submission of the batch
// without trying each alone, and the next submission leads a new commit.
func TestCreatorFailsBatchOnStoreFailure(t *testing.T) {
	t.Parallel()
	g := newGate()
	broken := errors.New("disk on fire")
	s := &faultStore{Store: openStore(t)}
	s.createFunc = func([]*conveyor.Execution) error {
		g.pass()
		if len(s.createCalls()) == 2 {
			return broken
		}
		return nil
	}
	c := &creator{store: s}
	exs := []*conveyor.Execution{newExecution("p"), newExecution("p"), newExecution("p"), newExecution("p")}

	errs := queueBehindLeader(t, c, g, exs)
	if errs[0] != nil {
		t.Errorf("leader: %v", errs[0])
	}
	for i, err := range errs[1:] {
		if !errors.Is(err, broken) {
			t.Errorf("create %d: %v, want the store's failure", i+1, err)
		}
	}
	if got := len(s.createCalls()); got != 2 {
		t.Errorf("%d CreateExecutions calls, want 2: a failed batch is not retried one by one", got)
	}
	stored := storedIDs(t, s)
	if len(stored) != 1 || !stored[exs[0].ID] {
		t.Errorf("stored %v, want only the leader's execution", stored)
	}

	after := newExecution("p")
	if err := c.create(after); err != nil {
		t.Fatalf("create after a failed batch: %v", err)
	}
	if _, err := s.GetExecution(t.Context(), after.ID); err != nil {
		t.Fatal(err)
	}
}

// TestCreatorRefusesInvalidBeforeBatching: an execution that cannot be
// created fails at once and never reaches the store, so it cannot sink a
// batch others share.
func TestCreatorRefusesInvalidBeforeBatching(t *testing.T) {
	t.Parallel()
	s := &faultStore{Store: openStore(t)}
	c := &creator{store: s}
	bad := newExecution("p")
	bad.Input = []byte(`{"unterminated":`)
	if err := c.create(bad); conveyor.ErrorCode(err) != conveyor.EINVALID {
		t.Fatalf("create: %v, want EINVALID", err)
	}
	if calls := s.createCalls(); len(calls) != 0 {
		t.Errorf("the store saw %v", calls)
	}
}

// TestCreatorLeaderReturnsOnceItsOwnIsStored: a leader hands the lead on
// once its own submission is stored, instead of committing what queued
// behind it while its own answer waits.
func TestCreatorLeaderReturnsOnceItsOwnIsStored(t *testing.T) {
	t.Parallel()
	first, second := newGate(), newGate()
	var calls sync.Mutex
	n := 0
	s := &faultStore{Store: openStore(t), createFunc: func([]*conveyor.Execution) error {
		calls.Lock()
		n++
		call := n
		calls.Unlock()
		if call == 1 {
			first.pass()
		} else {
			second.pass()
		}
		return nil
	}}
	c := &creator{store: s}
	leader, a, b := newExecution("p"), newExecution("p"), newExecution("p")

	led := make(chan error, 1)
	go func() { led <- c.create(leader) }()
	first.waitEntered(t)
	others := make(chan error, 2)
	for _, ex := range []*conveyor.Execution{a, b} {
		go func() { others <- c.create(ex) }()
	}
	waitUntil(t, "two creates to queue", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == 2
	})
	first.open()
	// The leader's answer does not wait for the next commit, which the
	// second gate holds.
	second.waitEntered(t)
	select {
	case err := <-led:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the leader still waits while the commit of the others is held")
	}
	second.open()
	for range 2 {
		if err := <-others; err != nil {
			t.Fatal(err)
		}
	}
	if got := s.createCalls(); len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 2 {
		t.Errorf("commits %v, want the leader's alone, then the two queued together", got)
	}
}
