package conveyor

import "time"

// Retention: a final execution may be deleted, with everything kept of
// it (events, log lines, data, tags, webhook deliveries), at a client's
// request (Store.DeleteExecution) or by a node's pruner once it has been
// final for longer than the node's retention (Store.PruneExecutions).
// A batch goes with the last of its members. Nothing else is ever
// deleted: a pending or running execution is cancelled first.

// CheckDelete returns nil if ex may be deleted: it is final, so nothing
// will change it any more. ECONFLICT otherwise.
func (ex *Execution) CheckDelete() error {
	if !ex.Status.Final() {
		return Errorf(ECONFLICT, "execution %q is %s; only a final execution can be deleted (cancel it first)", ex.ID, ex.Status)
	}
	return nil
}

// Expired reports whether pruning deletes ex: CheckDelete allows it and
// it finished before cutoff, now minus the retention.
func (ex *Execution) Expired(cutoff time.Time) bool {
	return ex.CheckDelete() == nil && ex.FinishedAt != nil && ex.FinishedAt.Before(cutoff)
}

// MinRetention is the shortest retention a node accepts: a shorter one is
// surely a mistake (30s meant as 30d), and would delete executions
// while their clients still read them.
const MinRetention = time.Minute
