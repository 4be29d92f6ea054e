package conveyor_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/conveyor-run/conveyor"
)

func progressEvent() conveyor.Event {
	total, pct, eta := 12, 41.67, 12.5
	return conveyor.Event{
		Type: conveyor.EventProgress, ExecutionID: "01a2172d-bce8-78f8-a116-d5fa31dd3d6e", Seq: 42,
		Time: time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC), Attempt: 1,
		Progress: &conveyor.Progress{CurrentStep: 5, TotalSteps: &total, Percentage: &pct, CurrentStepName: "resize",
			Message: "resized 1200 of 2400", Metrics: map[string]float64{"rows": 1200}, ETASeconds: &eta},
	}
}

// TestEventJSONIsTheWireContract pins the message fields clients read.
func TestEventJSONIsTheWireContract(t *testing.T) {
	b, err := json.Marshal(progressEvent())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"progress","execution_id":"01a2172d-bce8-78f8-a116-d5fa31dd3d6e","seq":42,"timestamp":"2026-11-26T09:30:00.123456789Z","attempt":1,` +
		`"progress":{"current_step":5,"total_steps":12,"percentage":41.67,"current_step_name":"resize","message":"resized 1200 of 2400","metrics":{"rows":1200},"eta_seconds":12.5}}`
	if string(b) != want {
		t.Fatalf("progress message\n got %s\nwant %s", b, want)
	}
	unknown, err := json.Marshal(conveyor.Progress{CurrentStep: 2, CurrentStepName: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"current_step":2,"total_steps":null,"percentage":null,"current_step_name":"agent"}`; string(unknown) != want {
		t.Fatalf("progress with an unknown total\n got %s\nwant %s", unknown, want)
	}
}

// BenchmarkEncodeProgressMessage is the encoding each stream does per
// message it sends.
func BenchmarkEncodeProgressMessage(b *testing.B) {
	ev := progressEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}
func TestProgressChanged(t *testing.T) {
	num := func(v float64) *float64 { return &v }
	steps := func(v int) *int { return &v }
	base := func() *conveyor.Progress {
		return &conveyor.Progress{CurrentStep: 2, TotalSteps: steps(4), Percentage: num(40), CurrentStepName: "load",
			Message: "rows", Metrics: map[string]float64{"rows": 10}, ETASeconds: num(3)}
	}
	for _, tc := range []struct {
		name   string
		change func(p *conveyor.Progress)
		want   bool
	}{
		{"nothing", func(*conveyor.Progress) {}, false},
		{"only the ETA", func(p *conveyor.Progress) { p.ETASeconds = num(9) }, false},
		{"the ETA gone", func(p *conveyor.Progress) { p.ETASeconds = nil }, false},
		{"step", func(p *conveyor.Progress) { p.CurrentStep = 3 }, true},
		{"total", func(p *conveyor.Progress) { p.TotalSteps = steps(5) }, true},
		{"total unknown", func(p *conveyor.Progress) { p.TotalSteps = nil }, true},
		{"percentage", func(p *conveyor.Progress) { p.Percentage = num(41) }, true},
		{"step name", func(p *conveyor.Progress) { p.CurrentStepName = "save" }, true},
		{"message", func(p *conveyor.Progress) { p.Message = "more rows" }, true},
		{"a metric", func(p *conveyor.Progress) { p.Metrics = map[string]float64{"rows": 11} }, true},
		{"a new metric", func(p *conveyor.Progress) { p.Metrics = map[string]float64{"rows": 10, "bytes": 1} }, true},
	} {
		p := base()
		tc.change(p)
		if got := p.Changed(base()); got != tc.want {
			t.Errorf("%s: Changed = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !base().Changed(nil) {
		t.Error("Changed(nil) = false, want true: the first progress is always news")
	}
}
