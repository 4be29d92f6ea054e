package relay

// MaxStored is maxStored, for tests.
const MaxStored = maxStored

// StoredSeq returns the newest seq the relay knows is stored for id and
// how many executions it remembers.
func (r *Relay) StoredSeq(id string) (seq int64, remembered int) {
	r.storedMu.Lock()
	defer r.storedMu.Unlock()
	return r.storedSeqLocked(id), len(r.stored) + len(r.storedOld)
}
