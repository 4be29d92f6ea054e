package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conveyor-run/conveyor/pipeline"
)

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		start := time.Now()
		if err := (&pipeline.SleepSpec{Duration: time.Minute}).Run(t.Context(), rec.exec()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != time.Minute {
			t.Errorf("slept %s, want 1m", took)
		}
		p := rec.progress()
		if len(p) < 90 || len(p) > 101 {
			t.Errorf("%d progress reports for a minute, want about 100", len(p))
		}
		for i, u := range p {
			if u.Total != 60 || (i > 0 && u.Done < p[i-1].Done) {
				t.Fatalf("report %d = %+v after %+v", i, u, p[max(i-1, 0)])
			}
		}
		if last := p[len(p)-1]; last.Done != 60 {
			t.Errorf("last report = %+v, want done", last)
		}
	})
}

func TestSleepCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- (&pipeline.SleepSpec{Duration: time.Hour}).Run(ctx, (&recorder{}).exec()) }()
		synctest.Wait() // the step is waiting
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		default:
			t.Fatal("the sleep step did not return on cancel")
		}
	})
}

func TestNoop(t *testing.T) {
	t.Parallel()
	if err := (&pipeline.NoopSpec{}).Run(t.Context(), (&recorder{}).exec()); err != nil {
		t.Fatal(err)
	}
}
