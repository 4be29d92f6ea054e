package hub

// Topics returns how many executions the hub holds state for, so tests
// can check that topics are released.
func (h *Hub) Topics() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.topics)
}
