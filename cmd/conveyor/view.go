package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/conveyor-run/conveyor"
)

// watchView shows the events of watched executions. show and end are
// called from one goroutine per execution.
type watchView interface {
	show(ev conveyor.Event)
	end(id string, final *conveyor.Event) // final is nil if the stream broke
	wait()
}

// progressEvery is the most often lineView prints the progress of one
// execution: a pipe or a log file wants the course of an execution, not
// every sample of it.
const progressEvery = time.Second

// lineView prints a line per status change and at most one progress line
// per progressEvery per execution, for logs and pipes. A progress that
// comes sooner is held and printed when its time comes, or before the
// next status line, so the last progress before the end is never lost.
type lineView struct {
	mu    sync.Mutex // guards out and execs; held by timer callbacks too
	out   io.Writer
	execs map[string]*lineExec
}

// lineExec is what lineView remembers of one execution.
type lineExec struct {
	printed time.Time       // when its last progress line was printed
	held    *conveyor.Event // a progress not printed yet
	timer   *time.Timer     // prints held when its time comes
}

func newLineView(out io.Writer) *lineView {
	return &lineView{out: out, execs: map[string]*lineExec{}}
}

func (v *lineView) show(ev conveyor.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	x := v.execs[ev.ExecutionID]
	if x == nil {
		x = &lineExec{}
		v.execs[ev.ExecutionID] = x
	}
	if ev.Type != conveyor.EventProgress {
		v.flush(x)
		v.print(ev)
		return
	}
	x.held = &ev
	wait := progressEvery - time.Since(x.printed)
	if wait <= 0 {
		v.flush(x)
		return
	}
	if x.timer == nil {
		var t *time.Timer
		t = time.AfterFunc(wait, func() {
			v.mu.Lock()
			defer v.mu.Unlock()
			if x.timer == t { // not stopped by a flush since
				v.flush(x)
			}
		})
		x.timer = t
	}
}

// flush prints x's held progress, if any. v.mu is held.
func (v *lineView) flush(x *lineExec) {
	if x.timer != nil {
		x.timer.Stop()
		x.timer = nil
	}
	if x.held != nil {
		v.print(*x.held)
		x.held = nil
		x.printed = time.Now()
	}
}

func (v *lineView) print(ev conveyor.Event) {
	fmt.Fprintf(v.out, "%s %s %s\n", clock(ev.Time), ev.ExecutionID, eventText(ev))
}

func (v *lineView) end(id string, _ *conveyor.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if x := v.execs[id]; x != nil {
		v.flush(x)
	}
}

func (v *lineView) wait() {}

// eventText is what an event says, without its time and execution: its
// type, the status of an opening status message, the attempt, the
// progress, the error and until when a retry waits. Each word once: a
// completed event reads "completed attempt 1", never "completed
// completed".
func eventText(ev conveyor.Event) string {
	words := []string{string(ev.Type)}
	if ev.Type == conveyor.EventStatus && ev.Status != "" {
		words = append(words, string(ev.Status))
	}
	if ev.Attempt > 0 && ev.Type != conveyor.EventProgress {
		words = append(words, "attempt "+strconv.Itoa(ev.Attempt))
	}
	if p := ev.Progress; p != nil && (ev.Type == conveyor.EventProgress || ev.Type == conveyor.EventStatus) {
		words = append(words, progressText(p))
	}
	if ev.Error != nil {
		words = append(words, "error: "+ev.Error.Error())
	}
	if ev.RetryAt != nil {
		words = append(words, "(retry at "+clock(*ev.RetryAt)+")")
	}
	return strings.Join(words, " ")
}

// progressText is a progress in words: percentage, step, message and
// metrics, each only when known.
func progressText(p *conveyor.Progress) string {
	var words []string
	if p.Percentage != nil {
		words = append(words, percent(p))
	}
	switch {
	case p.TotalSteps != nil:
		words = append(words, fmt.Sprintf("step %d/%d", p.CurrentStep, *p.TotalSteps))
	case p.CurrentStep > 0:
		words = append(words, fmt.Sprintf("step %d", p.CurrentStep))
	}
	step := p.CurrentStepName
	if p.Message != "" {
		step += ": " + p.Message
	}
	if step != "" {
		words = append(words, step)
	}
	if len(p.Metrics) > 0 {
		var m []string
		for _, k := range slices.Sorted(maps.Keys(p.Metrics)) {
			m = append(m, k+"="+strconv.FormatFloat(p.Metrics[k], 'g', -1, 64))
		}
		words = append(words, "["+strings.Join(m, " ")+"]")
	}
	return strings.Join(words, " ")
}

// barView draws a live progress bar per execution on a terminal.
//
// No lock of ours is held while mpb runs: mpb draws from its own
// goroutine, which calls the decorators, while bar methods wait for that
// goroutine. A decorator that took a lock held around a bar call would
// deadlock the two (it did: run and watch hung now and then after the
// end). So each bar's text is an atomic value the decorator only reads,
// and bars are only ever touched by their execution's goroutine.
type barView struct {
	progress *mpb.Progress
	bars     map[string]*bar // written only by newBarView
}

type bar struct {
	bar      *mpb.Bar
	priority int                    // of bar; its log line's is the next
	text     atomic.Pointer[string] // step and message, or the final status
	logBar   *mpb.Bar               // the last log line, under bar; nil before the first
	logLine  atomic.Pointer[string]
}

func (b *bar) setText(s string) { b.text.Store(&s) }

// newBarView draws a bar per execution, named by its pipeline and short
// id; names maps each id to its pipeline.
func newBarView(out io.Writer, ids []string, names map[string]string) *barView {
	v := &barView{progress: mpb.New(mpb.WithOutput(out), mpb.WithWidth(30)), bars: map[string]*bar{}}
	for i, id := range ids {
		b := &bar{priority: 2 * i}
		b.setText("connecting")
		b.bar = v.progress.AddBar(1000, mpb.BarPriority(b.priority),
			mpb.PrependDecorators(decor.Name(names[id]+" "+shortID(id), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Any(func(decor.Statistics) string {
				return " " + *b.text.Load()
			})),
		)
		v.bars[id] = b
	}
	return v
}

// shortID is the end of an id, the part that differs between executions
// created close together (ids are time-ordered).
func shortID(id string) string {
	if len(id) > 13 {
		return id[len(id)-12:]
	}
	return id
}

func (v *barView) show(ev conveyor.Event) {
	b := v.bars[ev.ExecutionID]
	if b == nil || ev.Type.Final() {
		return // end draws the final state
	}
	text := string(ev.Type)
	if ev.Status != "" {
		text = string(ev.Status)
	}
	if ev.Attempt > 1 {
		text += fmt.Sprintf(" (attempt %d)", ev.Attempt)
	}
	if p := ev.Progress; p != nil {
		text = progressText(&conveyor.Progress{
			CurrentStep: p.CurrentStep, TotalSteps: p.TotalSteps, CurrentStepName: p.CurrentStepName,
			Message: p.Message, Metrics: p.Metrics, // the bar shows the percentage
		})
		if p.Percentage != nil {
			b.bar.SetCurrent(min(int64(*p.Percentage*10), 999)) // 1000 would end the bar
		}
	}
	b.setText(text)
}

// log shows l, the newest log line of its execution, under its bar,
// cut to one line of the terminal.
func (v *barView) log(l conveyor.LogLine) {
	b := v.bars[l.ExecutionID]
	if b == nil {
		return
	}
	text := "  " + strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' ' // a tab or an escape would break the drawing
		}
		return r
	}, l.Line)
	b.logLine.Store(&text)
	if b.logBar == nil {
		// The first line: a line of text that sorts right after its bar.
		b.logBar = v.progress.New(0, mpb.NopStyle(), mpb.BarPriority(b.priority+1),
			mpb.PrependDecorators(decor.Any(func(st decor.Statistics) string {
				line := *b.logLine.Load()
				if w := st.AvailableWidth; w > 0 && utf8.RuneCountInString(line) > w {
					line = string([]rune(line)[:w])
				}
				return line
			})))
	}
}

func (v *barView) end(id string, final *conveyor.Event) {
	b := v.bars[id]
	if b.logBar != nil {
		b.logBar.Abort(false) // stays drawn, and lets Wait return
	}
	switch {
	case final == nil:
		b.setText("stopped watching")
	case final.Type == conveyor.EventCompleted:
		b.setText("completed")
		b.bar.SetCurrent(1000)
		return
	case final.Error != nil:
		b.setText(string(final.Type) + ": " + final.Error.Error())
	default:
		b.setText(string(final.Type))
	}
	b.bar.Abort(false)
}

func (v *barView) wait() { v.progress.Wait() }
