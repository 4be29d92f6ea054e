package storetest

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

// OpenNodeFunc opens a store on one shared database as the node with the
// given id, its claims and renewals holding leases of the given length.
// The store is closed when the test that made the database ends.
type OpenNodeFunc func(node string, lease time.Duration) conveyor.SharedStore

// RunShared runs the conformance suite of conveyor.SharedStore; a backend
// runs it besides Run. newDatabase must make a new, empty database,
// isolated from every other one it makes, and return how to open stores
// on it; subtests call it once each, open two nodes on the database and
// run in parallel.
func RunShared(t *testing.T, newDatabase func(t *testing.T) OpenNodeFunc) {
	t.Helper()
	groups := []struct {
		name  string
		cases []sharedCase
	}{
		{"ClaimPending", sharedClaimCases},
		{"RenewLeases", renewCases},
		{"RescueExpired", rescueCases},
		{"Webhook", sharedWebhookCases},
		{"IdempotencyKeys", sharedKeyCases},
		{"Resume", sharedResumeCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					open := newDatabase(t)
					a, b := open(nodeA, testLease), open(nodeB, testLease)
					tc.fn(&sharedFixture{fixture: &fixture{t: t, ctx: t.Context(), s: a}, a: a, b: b})
				})
			}
		})
	}
}

type sharedCase struct {
	name string
	fn   func(f *sharedFixture)
}

// The two nodes of every shared case and the length of their leases. The
// suite passes the lease rather than relying on a backend's default, so
// that it can tell exactly when a lease ends.
const (
	nodeA     = "node-a"
	nodeB     = "node-b"
	testLease = 30 * time.Second
)

// sharedFixture is a fixture on two nodes sharing one database. The
// embedded fixture's store, which its helpers use, is node a's.
type sharedFixture struct {
	*fixture
	a, b conveyor.SharedStore
}

// nodes returns both stores.
func (f *sharedFixture) nodes() []conveyor.SharedStore {
	return []conveyor.SharedStore{f.a, f.b}
}

// expiry returns the first instant at which a lease taken or renewed at
// t counts as expired: a lease holds through its last instant.
func expiry(t time.Time) time.Time {
	return t.Add(testLease + time.Microsecond)
}

// noRetries and retriesOf are RescueExpired's policy arguments.
func noRetries(string) conveyor.RetryPolicy { return conveyor.RetryPolicy{} }

// retriesOf gives each pipeline its retries in m and waits without
// jitter: a retry of a first attempt waits exactly retryWait.
func retriesOf(m map[string]int) func(string) conveyor.RetryPolicy {
	return func(pipeline string) conveyor.RetryPolicy {
		return conveyor.RetryPolicy{Retries: m[pipeline], Delay: retryWait, JitterFunc: noJitter}
	}
}

// retryWait is the wait of retriesOf's policies after a first attempt.
const retryWait = 3 * time.Second

func noJitter(d time.Duration) time.Duration { return d }

func (f *sharedFixture) claimOn(s conveyor.SharedStore, limit int, now time.Time) []conveyor.Claim {
	f.t.Helper()
	claims, err := s.ClaimPending(f.ctx, limit, func() time.Time { return now })
	if err != nil {
		f.t.Fatalf("ClaimPending(%d): %v", limit, err)
	}
	return claims
}

// claimOneOn claims one execution on s and fails unless it is id, the
// oldest pending one.
func (f *sharedFixture) claimOneOn(s conveyor.SharedStore, id string, now time.Time) conveyor.Claim {
	f.t.Helper()
	claims := f.claimOn(s, 1, now)
	if len(claims) != 1 || claims[0].Execution.ID != id {
		f.t.Fatalf("ClaimPending(1) = %v, want %s", claimIDs(claims), id)
	}
	return claims[0]
}

func (f *sharedFixture) getOn(s conveyor.SharedStore, id string) *conveyor.Execution {
	f.t.Helper()
	ex, err := s.GetExecution(f.ctx, id)
	if err != nil {
		f.t.Fatalf("GetExecution %s: %v", id, err)
	}
	return ex
}

// renew renews the leases of ids, reserving no seqs beyond the claim's.
func (f *sharedFixture) renew(s conveyor.SharedStore, ids []string, now time.Time) conveyor.Renewal {
	f.t.Helper()
	var leases []conveyor.Lease
	for _, id := range ids {
		leases = append(leases, conveyor.Lease{ExecutionID: id})
	}
	r, err := s.RenewLeases(f.ctx, leases, now)
	if err != nil {
		f.t.Fatalf("RenewLeases(%v): %v", ids, err)
	}
	return r
}

// wantRenewal fails unless r reports exactly lost and cancelRequested,
// each in the order of the ids renewed.
func (f *sharedFixture) wantRenewal(r conveyor.Renewal, lost, cancelRequested []string) {
	f.t.Helper()
	if !slices.Equal(r.Lost, lost) {
		f.t.Errorf("Lost = %v, want %v", r.Lost, lost)
	}
	if !slices.Equal(r.CancelRequested, cancelRequested) {
		f.t.Errorf("CancelRequested = %v, want %v", r.CancelRequested, cancelRequested)
	}
}

// wantRescued runs RescueExpired on s and fails unless it appended one
// event for each of ids and no other. It returns the events by execution.
func (f *sharedFixture) wantRescued(s conveyor.SharedStore, now time.Time, retries func(string) conveyor.RetryPolicy, ids ...string) map[string]conveyor.Event {
	f.t.Helper()
	evs, err := s.RescueExpired(f.ctx, now, retries)
	if err != nil {
		f.t.Fatalf("RescueExpired at %s: %v", now.Format(time.RFC3339Nano), err)
	}
	byID := map[string]conveyor.Event{}
	for _, ev := range evs {
		byID[ev.ExecutionID] = ev
	}
	got := slices.Sorted(maps.Keys(byID))
	want := slices.Sorted(slices.Values(ids))
	if len(evs) != len(ids) || !slices.Equal(got, want) {
		f.t.Fatalf("RescueExpired at %s rescued %d events of %v, want one each of %v", now.Format(time.RFC3339Nano), len(evs), got, want)
	}
	return byID
}

var sharedClaimCases = []sharedCase{
	{"RecordsNode", func(f *sharedFixture) {
		x, y := f.create("alpha"), f.create("alpha")
		cx := f.claimOneOn(f.a, x.ID, at(100))
		cy := f.claimOneOn(f.b, y.ID, at(100))
		for _, c := range []struct {
			claim conveyor.Claim
			node  string
		}{{cx, nodeA}, {cy, nodeB}} {
			id := c.claim.Execution.ID
			if got := c.claim.Execution.Node; got != c.node {
				f.t.Errorf("%s: claimed with node %q, want %q", id, got, c.node)
			}
			for _, s := range f.nodes() {
				if got := f.getOn(s, id).Node; got != c.node {
					f.t.Errorf("%s: node %q, want %q", id, got, c.node)
				}
			}
		}
		// Node names the node that last ran an execution, also after it
		// finished.
		f.append(finalEvent(cx.Execution, conveyor.EventCompleted, 2))
		if got := f.getOn(f.b, x.ID); got.Status != conveyor.StatusCompleted || got.Node != nodeA {
			f.t.Errorf("%s after completion: status %s, node %q; want completed, %q", x.ID, got.Status, got.Node, nodeA)
		}
	}},

	{"ConcurrentNodes", func(f *sharedFixture) {
		// Nodes claiming at once never claim one execution twice, and each
		// claim records the node that made it.
		const executions, claimersPerNode = 500, 4
		exs := f.createN(executions, "alpha")
		var (
			mu      sync.Mutex
			claimed = map[string][]string{} // id -> nodes
			wg      sync.WaitGroup
		)
		for _, n := range []struct {
			s    conveyor.SharedStore
			node string
		}{{f.a, nodeA}, {f.b, nodeB}} {
			for range claimersPerNode {
				wg.Go(func() {
					for {
						claims, err := n.s.ClaimPending(f.ctx, 5, func() time.Time { return at(1000) })
						if err != nil {
							f.t.Errorf("ClaimPending on %s: %v", n.node, err)
							return
						}
						if len(claims) == 0 {
							return
						}
						mu.Lock()
						for _, c := range claims {
							claimed[c.Execution.ID] = append(claimed[c.Execution.ID], n.node)
							if c.Execution.Node != n.node {
								f.t.Errorf("%s claimed by %s records node %q", c.Execution.ID, n.node, c.Execution.Node)
							}
						}
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		if len(claimed) != executions {
			f.t.Errorf("%d executions claimed, want %d", len(claimed), executions)
		}
		perNode := map[string]int{}
		for _, ex := range exs {
			nodes := claimed[ex.ID]
			if len(nodes) != 1 {
				f.t.Errorf("%s claimed by %v, want once", ex.ID, nodes)
				continue
			}
			perNode[nodes[0]]++
		}
		f.t.Logf("claims per node: %v", perNode)
	}},
}

var renewCases = []sharedCase{
	{"ExtendsLease", func(f *sharedFixture) {
		ex := f.create("alpha")
		claimedAt := at(100)
		claimed := f.claimOneOn(f.a, ex.ID, claimedAt).Execution
		renewedAt := claimedAt.Add(testLease / 3)
		f.wantRenewal(f.renew(f.a, []string{ex.ID}, renewedAt), nil, nil)
		checkExecution(f.t, f.get(ex.ID), claimed)

		// After the claim's lease, before the renewed one: held.
		for _, now := range []time.Time{expiry(claimedAt), renewedAt.Add(testLease)} {
			for _, s := range f.nodes() {
				f.wantRescued(s, now, noRetries)
			}
		}
		f.wantRescued(f.b, expiry(renewedAt), noRetries, ex.ID)
	}},

	{"Lost", func(f *sharedFixture) {
		// Ids no longer running under this node's lease: finished, running
		// under another node, unknown.
		held, done, other := f.create("alpha"), f.create("alpha"), f.create("alpha")
		claimedAt := at(100)
		claims := f.claimOn(f.a, 2, claimedAt)
		if got := claimIDs(claims); !slices.Equal(got, []string{held.ID, done.ID}) {
			f.t.Fatalf("claims = %v, want %s, %s", got, held.ID, done.ID)
		}
		others := f.claimOneOn(f.b, other.ID, claimedAt).Execution
		f.append(finalEvent(claims[1].Execution, conveyor.EventCompleted, 2))
		finished := f.get(done.ID)

		renewedAt := claimedAt.Add(20 * time.Second)
		ids := append([]string{held.ID, done.ID, other.ID}, unknownIDs...)
		f.wantRenewal(f.renew(f.a, ids, renewedAt), append([]string{done.ID, other.ID}, unknownIDs...), nil)

		// Node a's renewal neither took over node b's execution nor
		// extended its lease, and left the finished one as it was.
		checkExecution(f.t, f.get(other.ID), others)
		if got := f.get(other.ID).Node; got != nodeB {
			f.t.Errorf("%s: node %q after node a renewed it, want %q", other.ID, got, nodeB)
		}
		checkExecution(f.t, f.get(done.ID), finished)
		f.wantRescued(f.a, expiry(claimedAt), noRetries, other.ID)
		f.wantRescued(f.a, expiry(renewedAt), noRetries, held.ID)
	}},

	{"LostAfterRescue", func(f *sharedFixture) {
		// Ids a rescue took from this node: requeued, failed, and requeued
		// and claimed again by another node.
		retries := retriesOf(map[string]int{"retry-once": 1})
		reclaimed, requeued, failed := f.create("retry-once"), f.create("retry-once"), f.create("once")
		claimedAt := at(100)
		f.claimOn(f.a, 3, claimedAt)
		rescuedAt := expiry(claimedAt)
		f.wantRescued(f.b, rescuedAt, retries, reclaimed.ID, requeued.ID, failed.ID)
		reclaimedAt := rescuedAt.Add(retryWait) // once the retry is due
		f.claimOneOn(f.b, reclaimed.ID, reclaimedAt)

		ids := []string{reclaimed.ID, requeued.ID, failed.ID}
		f.wantRenewal(f.renew(f.a, ids, rescuedAt), ids, nil)
		if got := f.get(reclaimed.ID); got.Status != conveyor.StatusRunning || got.Node != nodeB || got.Attempt != 2 {
			f.t.Errorf("%s after node a renewed it: status %s, node %q, attempt %d; want running, %q, 2",
				reclaimed.ID, got.Status, got.Node, got.Attempt, nodeB)
		}
		if got := f.get(requeued.ID); got.Status != conveyor.StatusPending {
			f.t.Errorf("%s after node a renewed it: status %s, want pending", requeued.ID, got.Status)
		}
		// Node b's lease is its own claim's.
		f.wantRescued(f.a, reclaimedAt.Add(testLease), retries)
		f.wantRescued(f.a, expiry(reclaimedAt), retries, reclaimed.ID)
	}},

	{"CancelRequested", func(f *sharedFixture) {
		asked, quiet := f.create("alpha"), f.create("alpha")
		claimedAt := at(100)
		claims := f.claimOn(f.a, 2, claimedAt)
		// The cancel arrives on the other node.
		if ex, ev, err := f.b.Cancel(f.ctx, asked.ID, at(110)); err != nil || ev != nil || !ex.CancelRequested {
			f.t.Fatalf("Cancel %s on node b = %+v, %+v, %v; want cancel requested, no event", asked.ID, ex, ev, err)
		}

		renewedAt := claimedAt.Add(20 * time.Second)
		f.wantRenewal(f.renew(f.a, []string{quiet.ID, asked.ID}, renewedAt), nil, []string{asked.ID})
		// Both leases were renewed: the runner has yet to write the
		// cancelled event.
		f.wantRescued(f.b, expiry(claimedAt), noRetries)

		// Once it has, the execution is no longer running here.
		f.append(finalEvent(claims[0].Execution, conveyor.EventCancelled, 2))
		f.wantRenewal(f.renew(f.a, []string{asked.ID, quiet.ID}, renewedAt.Add(time.Second)), []string{asked.ID}, nil)
	}},

	{"DuplicateIDs", func(f *sharedFixture) {
		held, asked, done := f.create("alpha"), f.create("alpha"), f.create("alpha")
		claimedAt := at(100)
		claims := f.claimOn(f.a, 3, claimedAt)
		f.cancel(asked.ID, at(110))
		f.append(finalEvent(claims[2].Execution, conveyor.EventCompleted, 2))

		unknown := unknownIDs[0]
		ids := []string{held.ID, done.ID, asked.ID, unknown, held.ID, asked.ID, done.ID, unknown}
		renewedAt := claimedAt.Add(20 * time.Second)
		f.wantRenewal(f.renew(f.a, ids, renewedAt), []string{done.ID, unknown}, []string{asked.ID})
		f.wantRescued(f.b, expiry(claimedAt), noRetries)
		f.wantRescued(f.b, expiry(renewedAt), noRetries, held.ID, asked.ID)
	}},

	{"ReservesSeqs", func(f *sharedFixture) {
		// A claim reserves SeqReservation seqs past its started event, a
		// renewal raises the reservation (never lowers it), and a rescue
		// takes the seq after it: the lost node may have published
		// progress up to it without storing any.
		raised, kept := f.create("alpha"), f.create("alpha")
		claimedAt := at(100)
		for _, c := range f.claimOn(f.a, 2, claimedAt) {
			if want := c.Started.Seq + conveyor.SeqReservation; c.Execution.SeqReserved != want || f.get(c.Execution.ID).SeqReserved != want {
				f.t.Errorf("%s: claimed with %d seqs reserved (stored %d), want %d", c.Execution.ID, c.Execution.SeqReserved, f.get(c.Execution.ID).SeqReserved, want)
			}
		}
		f.append(progressEvent(f.get(raised.ID), 2, progress(1, 2, 50)))
		higher := int64(5 + 2*conveyor.SeqReservation)
		renewedAt := claimedAt.Add(testLease / 3)
		r, err := f.a.RenewLeases(f.ctx, []conveyor.Lease{{ExecutionID: raised.ID, SeqReserved: higher}, {ExecutionID: kept.ID, SeqReserved: 3}}, renewedAt)
		if err != nil {
			f.t.Fatal(err)
		}
		f.wantRenewal(r, nil, nil)
		byID := f.wantRescued(f.b, expiry(renewedAt), noRetries, raised.ID, kept.ID)
		for id, want := range map[string]int64{raised.ID: higher + 1, kept.ID: 1 + conveyor.SeqReservation + 1} {
			if got := byID[id].Seq; got != want {
				f.t.Errorf("%s: rescued with seq %d, want %d", id, got, want)
			}
			if got := f.get(id).LastSeq; got != want {
				f.t.Errorf("%s: last seq %d after the rescue, want %d", id, got, want)
			}
		}
	}},

	{"NoIDs", func(f *sharedFixture) {
		ex := f.create("alpha")
		claimedAt := at(100)
		f.claimOneOn(f.a, ex.ID, claimedAt)
		for _, ids := range [][]string{nil, {}} {
			if r := f.renew(f.a, ids, claimedAt.Add(time.Second)); r.Lost != nil || r.CancelRequested != nil {
				f.t.Errorf("RenewLeases(%#v) = %+v, want the zero Renewal", ids, r)
			}
		}
		// Nothing was renewed.
		f.wantRescued(f.b, expiry(claimedAt), noRetries, ex.ID)
	}},
}

var rescueCases = []sharedCase{
	{"HeldUntilExpiry", func(f *sharedFixture) {
		// A claim's lease holds through its last instant; then any node
		// rescues the execution, its own ones included.
		x, y := f.create("alpha"), f.create("alpha")
		claimedAt := at(100)
		f.claimOneOn(f.a, x.ID, claimedAt)
		f.claimOneOn(f.b, y.ID, claimedAt.Add(time.Second))
		for _, now := range []time.Time{claimedAt, claimedAt.Add(testLease / 2), claimedAt.Add(testLease)} {
			for _, s := range f.nodes() {
				f.wantRescued(s, now, noRetries)
			}
		}
		f.wantRescued(f.b, expiry(claimedAt), noRetries, x.ID)
		if got := f.get(y.ID); got.Status != conveyor.StatusRunning {
			f.t.Errorf("%s: status %s while its lease holds, want running", y.ID, got.Status)
		}
		f.wantRescued(f.b, expiry(claimedAt.Add(time.Second)), noRetries, y.ID)
	}},

	{"OnlyRunning", func(f *sharedFixture) {
		done := f.start("alpha")
		f.append(finalEvent(done, conveyor.EventCompleted, 2))
		pending := f.create("alpha")
		cancelled := f.create("alpha")
		f.cancel(cancelled.ID, at(50))
		var before []*conveyor.Execution
		for _, ex := range []*conveyor.Execution{done, pending, cancelled} {
			before = append(before, f.get(ex.ID))
		}
		for _, s := range f.nodes() {
			f.wantRescued(s, at(100000), retriesOf(map[string]int{"alpha": 3}))
		}
		for _, ex := range before {
			checkExecution(f.t, f.get(ex.ID), ex)
		}
	}},

	{"RetryOrFail", func(f *sharedFixture) {
		retries := retriesOf(map[string]int{"retry-once": 1, "no-retries": 0})

		// Running attempt 1 with a retry left: back to pending.
		again := f.start("retry-once")
		f.append(progressEvent(again, 2, progress(1, 3, 20)))
		// Running with no retries: failed.
		noRetriesEx := f.start("no-retries")
		noRetriesProgress := progress(2, 3, 60)
		f.append(progressEvent(noRetriesEx, 2, noRetriesProgress))
		// Running attempt 2 of a pipeline with one retry: none left.
		lastTry := f.start("retry-once")
		f.append(finalEvent(lastTry, conveyor.EventRetrying, 2))
		lastTry = f.claimOne(lastTry.ID, at(90)).Execution
		// A pipeline this node does not know has no retries.
		unknownPipeline := f.start("gone")
		// Its lease renewed past the rescue: untouched.
		held := f.start("retry-once")
		before := map[string]*conveyor.Execution{}
		for _, ex := range []*conveyor.Execution{again, noRetriesEx, lastTry, unknownPipeline} {
			before[ex.ID] = f.get(ex.ID)
		}

		now := at(1000)
		f.wantRenewal(f.renew(f.a, []string{held.ID}, now.Add(-time.Second)), nil, nil)
		heldBefore := f.get(held.ID)
		byID := f.wantRescued(f.b, now, retries, again.ID, noRetriesEx.ID, lastTry.ID, unknownPipeline.ID)

		// The retried execution: pending, error interrupted naming the node
		// whose lease expired, progress cleared, waiting to retry as the
		// policy says.
		b := before[again.ID]
		ev := byID[again.ID]
		if ev.Type != conveyor.EventRetrying || ev.Error == nil || ev.Error.Code != conveyor.EINTERRUPTED || !strings.Contains(ev.Error.Message, nodeA) {
			f.t.Errorf("retried execution: event %s, want retrying with code %s naming %s", toJSON(ev), conveyor.EINTERRUPTED, nodeA)
		}
		// The rescue's seq comes after what the lost node reserved.
		retryAt := now.Add(retryWait)
		wantEv := conveyor.Event{Type: conveyor.EventRetrying, ExecutionID: again.ID, Seq: b.SeqReserved + 1, Time: now, Attempt: 1, Status: conveyor.StatusPending, Error: ev.Error,
			RetryAt: &retryAt}
		checkEvent(f.t, ev, wantEv)
		checkEvents(f.t, f.eventsAfter(again.ID, b.LastSeq), []conveyor.Event{wantEv})
		want := *b
		want.Status, want.Progress, want.Error, want.LastSeq, want.RetryAt = conveyor.StatusPending, nil, ev.Error, b.SeqReserved+1, &retryAt
		got := f.getOn(f.b, again.ID)
		want.StartedAt = got.StartedAt // left open until the next claim
		checkExecution(f.t, got, &want)

		// The failed ones: failed with EINTERRUPTED, finished now, the last
		// progress kept.
		for _, ex := range []*conveyor.Execution{noRetriesEx, lastTry, unknownPipeline} {
			b := before[ex.ID]
			ev := byID[ex.ID]
			if ev.Type != conveyor.EventFailed || ev.Error == nil || ev.Error.Code != conveyor.EINTERRUPTED || !strings.Contains(ev.Error.Message, nodeA) {
				f.t.Errorf("%s: event %s, want failed with code %s naming %s", ex.Pipeline, toJSON(ev), conveyor.EINTERRUPTED, nodeA)
				continue
			}
			wantEv := conveyor.Event{Type: conveyor.EventFailed, ExecutionID: ex.ID, Seq: b.SeqReserved + 1, Time: now, Attempt: b.Attempt, Status: conveyor.StatusFailed, Progress: b.Progress, Error: ev.Error}
			checkEvent(f.t, ev, wantEv)
			checkEvents(f.t, f.eventsAfter(ex.ID, b.LastSeq), []conveyor.Event{wantEv})
			want := *b
			want.Status, want.Error, want.FinishedAt, want.LastSeq = conveyor.StatusFailed, ev.Error, ptr(now), b.SeqReserved+1
			checkExecution(f.t, f.getOn(f.b, ex.ID), &want)
		}
		if got := f.get(noRetriesEx.ID).Progress; !equalProgress(got, noRetriesProgress) {
			f.t.Errorf("failed execution's progress = %s, want the last one, %s", toJSON(got), toJSON(noRetriesProgress))
		}
		checkExecution(f.t, f.get(held.ID), heldBefore)

		// Nothing expired is left running, so a second pass finds nothing.
		for _, s := range f.nodes() {
			f.wantRescued(s, now, retries)
		}
		// The other node claims the retry once it is due: its next
		// attempt, its node.
		if claims := f.claimOn(f.b, 1, retryAt.Add(-time.Microsecond)); len(claims) != 0 {
			f.t.Errorf("claim before the retry is due = %v, want none", claimIDs(claims))
		}
		c := f.claimOneOn(f.b, again.ID, retryAt)
		if c.Execution.Attempt != 2 || c.Execution.Node != nodeB || c.Started.Seq != b.SeqReserved+2 || c.Execution.RetryAt != nil {
			f.t.Errorf("rescued execution claimed with attempt %d, node %q, started seq %d, retry at %v; want 2, %q, %d, nil",
				c.Execution.Attempt, c.Execution.Node, c.Started.Seq, c.Execution.RetryAt, nodeB, b.SeqReserved+2)
		}
	}},

	{"FencesStaleAttempt", func(f *sharedFixture) {
		// The node that lost the lease may still write; whatever it writes
		// after the rescue is dropped.
		retries := retriesOf(map[string]int{"retry-once": 1})
		requeued, failed := f.create("retry-once"), f.create("once")
		claimedAt := at(100)
		claims := f.claimOn(f.a, 2, claimedAt)
		stale := map[string]*conveyor.Execution{}
		for _, c := range claims {
			stale[c.Execution.ID] = c.Execution
			f.append(progressEvent(c.Execution, 2, progress(1, 2, 50)))
		}
		f.wantRescued(f.b, expiry(claimedAt), retries, requeued.ID, failed.ID)
		rescued := map[string]*conveyor.Execution{requeued.ID: f.get(requeued.ID), failed.ID: f.get(failed.ID)}

		// Back to pending, or failed: no write of attempt 1 lands.
		staleDone := finalEvent(stale[failed.ID], conveyor.EventCompleted, 5)
		staleDone.Result = []byte(`{"late": true}`)
		f.append(
			progressEvent(stale[requeued.ID], 4, progress(2, 2, 90)),
			finalEvent(stale[requeued.ID], conveyor.EventCompleted, 5),
			progressEvent(stale[failed.ID], 4, progress(2, 2, 90)),
			staleDone,
		)
		for id, want := range rescued {
			checkExecution(f.t, f.get(id), want)
			if evs := f.eventsAfter(id, want.LastSeq); len(evs) != 0 {
				f.t.Errorf("%s: stale writes stored as events %v", id, eventSeqs(evs))
			}
		}

		// Claimed again by the other node: attempt 1 is still fenced off,
		// attempt 2 writes.
		current := f.claimOneOn(f.b, requeued.ID, expiry(claimedAt).Add(retryWait)).Execution
		f.append(
			progressEvent(stale[requeued.ID], 5, progress(2, 2, 90)),
			finalEvent(stale[requeued.ID], conveyor.EventCompleted, 6),
		)
		checkExecution(f.t, f.get(requeued.ID), current)
		p := progressEvent(current, current.LastSeq+1, progress(1, 2, 40))
		if err := f.b.Append(f.ctx, []conveyor.Event{p}); err != nil {
			f.t.Fatalf("Append on node b: %v", err)
		}
		want := *current
		want.Progress, want.LastSeq = p.Progress, p.Seq
		checkExecution(f.t, f.get(requeued.ID), &want)
		checkEvents(f.t, f.eventsAfter(requeued.ID, current.LastSeq-1), []conveyor.Event{startedEvent(current), p})
	}},

	{"ConcurrentNodes", func(f *sharedFixture) {
		// Nodes rescuing at once never both act on one execution.
		const executions = 200
		exs := f.createN(executions, "alpha")
		claimedAt := at(executions + 1)
		f.claimOn(f.a, executions, claimedAt)
		now := claimedAt.Add(time.Hour)
		var (
			mu  sync.Mutex
			all []conveyor.Event
			wg  sync.WaitGroup
		)
		for _, s := range []conveyor.SharedStore{f.a, f.b, f.a, f.b} {
			wg.Go(func() {
				evs, err := s.RescueExpired(f.ctx, now, noRetries)
				if err != nil {
					f.t.Errorf("RescueExpired: %v", err)
				}
				mu.Lock()
				all = append(all, evs...)
				mu.Unlock()
			})
		}
		wg.Wait()
		seen := map[string]int{}
		for _, ev := range all {
			seen[ev.ExecutionID]++
		}
		if len(all) != executions || len(seen) != executions {
			f.t.Errorf("%d rescue events for %d executions, want %d for %d", len(all), len(seen), executions, executions)
		}
		for _, ex := range exs {
			// Failed once: one event after the claim's reservation.
			if got := f.get(ex.ID); got.Status != conveyor.StatusFailed || got.LastSeq != 2+conveyor.SeqReservation {
				f.t.Errorf("%s: status %s, last seq %d; want failed once, %d", ex.ID, got.Status, got.LastSeq, 2+conveyor.SeqReservation)
			}
		}
	}},
}
