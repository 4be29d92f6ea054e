package api

import (
	"net/http"

	"github.com/conveyor-run/conveyor"
)

// pipelineView is how a pipeline is shown. Durations are Go duration
// strings ("5m0s"), omitted when not set.
type pipelineView struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Kind        string     `json:"kind"` // "steps" or "handler"
	Retries     int        `json:"retries"`
	Timeout     string     `json:"timeout,omitempty"`
	Steps       []stepView `json:"steps"`
}

type stepView struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Timeout string `json:"timeout,omitempty"`
	Spec    any    `json:"spec,omitempty"`
}

func viewPipeline(p *conveyor.Pipeline) pipelineView {
	v := pipelineView{Name: p.Name, Description: p.Description, Kind: "steps", Retries: p.Retries, Steps: []stepView{}}
	if p.Handler != nil {
		v.Kind = "handler"
	}
	if p.Timeout > 0 {
		v.Timeout = p.Timeout.String()
	}
	for _, st := range p.Steps {
		sv := stepView{Name: st.Name, Kind: st.Kind, Spec: st.Spec}
		if st.Timeout > 0 {
			sv.Timeout = st.Timeout.String()
		}
		v.Steps = append(v.Steps, sv)
	}
	return v
}

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) {
	views := []pipelineView{}
	for _, p := range s.cfg.Engine.Pipelines() {
		views = append(views, viewPipeline(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": views})
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request) {
	p, ok := s.cfg.Engine.Pipeline(r.PathValue("name"))
	if !ok {
		s.writeError(w, r, conveyor.Errorf(conveyor.ENOTFOUND, "pipeline %q does not exist", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, viewPipeline(p))
}
