package api

import (
	"net/http"

	"github.com/conveyor-run/conveyor"
)

// createBatchRequest is the body of POST /batches.
type createBatchRequest struct {
	Executions []conveyor.NewExecution `json:"executions"`
	Tags       conveyor.Tags           `json:"tags"`
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	if !s.admitSubmission(w, r) {
		return
	}
	var req createBatchRequest
	if err := decodeBodyUpTo(w, r, &req, false, MaxBatchBodyBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch n := len(req.Executions); {
	case n == 0:
		s.writeError(w, r, conveyor.Errorf(conveyor.EINVALID, "executions must hold 1 to %d items", conveyor.MaxBatchSize))
		return
	case n > conveyor.MaxBatchSize:
		s.writeError(w, r, conveyor.Errorf(conveyor.ETOOLARGE, "a batch holds at most %d executions, not %d", conveyor.MaxBatchSize, n))
		return
	}
	if err := req.Tags.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.checkBatchWebhooks(r.Context(), req.Executions); err != nil {
		s.writeError(w, r, err)
		return
	}
	key, err := idempotencyOf(r, &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, created, err := s.cfg.Runner.SubmitBatch(r.Context(), conveyor.NewBatch{Executions: req.Executions, Tags: req.Tags, Idempotency: key})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/batches/"+b.ID)
	if !created {
		writeJSON(w, http.StatusOK, b)
		return
	}
	s.submitted(b.Total)
	writeJSON(w, http.StatusAccepted, b)
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.cfg.Store.GetBatch(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	var f conveyor.BatchFilter
	var err error
	if f.Status, f.Tags, f.Limit, f.Cursor, err = listParams(r.URL.Query()); err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.Store.ListBatches(r.Context(), f)
	s.writeList(w, r, page, err)
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := s.cfg.Runner.CancelBatch(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, b)
}
