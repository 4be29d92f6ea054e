package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/conveyor-run/conveyor"
)

// watchView shows the events of watched executions.
type watchView interface {
	show(ev conveyor.Event)
	end(id string, final *conveyor.Event) // final is nil if the stream broke
	wait()
}

// lineView prints one line per event, for logs and pipes.
type lineView struct {
	mu  sync.Mutex
	out io.Writer
}

func (v *lineView) show(ev conveyor.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	line := fmt.Sprintf("%s %s %-9s", ev.Time.Local().Format("15:04:05.000"), ev.ExecutionID, ev.Type)
	if ev.Status != "" {
		line += " " + string(ev.Status)
	}
	if p := ev.Progress; p != nil {
		line += fmt.Sprintf(" %s step %d %s", percent(p), p.CurrentStep, p.CurrentStepName)
		if p.Message != "" {
			line += ": " + p.Message
		}
	}
	if ev.Error != nil {
		line += " error: " + ev.Error.Error()
	}
	fmt.Fprintln(v.out, line)
}

func (v *lineView) end(string, *conveyor.Event) {}
func (v *lineView) wait()                       {}

// barView draws a live progress bar per execution.
type barView struct {
	progress *mpb.Progress
	mu       sync.Mutex
	bars     map[string]*bar
}

type bar struct {
	bar  *mpb.Bar
	text string // step and message, or the final status
}

func newBarView(out io.Writer, ids []string) *barView {
	v := &barView{progress: mpb.New(mpb.WithOutput(out), mpb.WithWidth(30)), bars: map[string]*bar{}}
	for _, id := range ids {
		b := &bar{text: "connecting"}
		b.bar = v.progress.AddBar(1000,
			mpb.PrependDecorators(decor.Name(shortID(id), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Any(func(decor.Statistics) string {
				v.mu.Lock()
				defer v.mu.Unlock()
				return " " + b.text
			})),
		)
		v.bars[id] = b
	}
	return v
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[len(id)-12:]
	}
	return id
}

func (v *barView) show(ev conveyor.Event) {
	b := v.bars[ev.ExecutionID]
	if b == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	b.text = string(ev.Type)
	if ev.Status != "" {
		b.text = string(ev.Status)
	}
	if p := ev.Progress; p != nil {
		b.text = fmt.Sprintf("step %d %s", p.CurrentStep, p.CurrentStepName)
		if p.TotalSteps != nil {
			b.text = fmt.Sprintf("step %d/%d %s", p.CurrentStep, *p.TotalSteps, p.CurrentStepName)
		}
		if p.Message != "" {
			b.text += ": " + p.Message
		}
		if p.Percentage != nil {
			b.bar.SetCurrent(int64(*p.Percentage * 10))
		}
	}
}

func (v *barView) end(id string, final *conveyor.Event) {
	b := v.bars[id]
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case final == nil:
		b.text = "stream lost"
	case final.Type == conveyor.EventCompleted:
		b.text = "completed"
		b.bar.SetCurrent(1000)
		return
	case final.Error != nil:
		b.text = string(final.Type) + ": " + final.Error.Error()
	default:
		b.text = string(final.Type)
	}
	b.bar.Abort(false)
}

func (v *barView) wait() { v.progress.Wait() }
