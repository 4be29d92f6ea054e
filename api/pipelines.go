package api

import (
	"net/http"

	"github.com/conveyor-run/conveyor"
)

func (s *Server) listPipelines(w http.ResponseWriter, _ *http.Request) {
	infos := []conveyor.PipelineInfo{}
	for _, p := range s.cfg.Runner.Pipelines() {
		infos = append(infos, p.Info())
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": infos})
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request) {
	p, ok := s.cfg.Runner.Pipeline(r.PathValue("name"))
	if !ok {
		s.writeError(w, r, conveyor.Errorf(conveyor.ENOTFOUND, "pipeline %q does not exist", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, p.Info())
}
