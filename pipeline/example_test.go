package pipeline_test

import (
	"fmt"

	"github.com/conveyor-run/conveyor/pipeline"
)

// An exec step's standard output is parsed line by line: progress lines
// become progress and everything else goes to the log. A malformed
// progress line goes to the log too, so a typo never fails a step.
func ExampleParseProgressLine() {
	lines := []string{
		"::progress 3/10 copying files",
		"::progress 42.5% uploading",
		"::progress 12/10 an estimate that ran over",
		`::progress {"current":3,"total":4,"message":"indexing","metrics":{"rows":1200}}`,
		`::progress {"message":"only a message"}`,
		"copying photo.jpg",
		"::progressive is not a progress line",
		"::progress -1/10",
	}
	for _, line := range lines {
		fmt.Println(line)
		u, ok, err := pipeline.ParseProgressLine(line)
		switch {
		case !ok:
			fmt.Println("  not progress: a log line")
		case err != nil:
			fmt.Println("  malformed:", err)
		case u.Total == 0: // no current/total given: keep the step's last one
			fmt.Printf("  message %q, metrics %v\n", u.Message, u.Metrics)
		default:
			fmt.Printf("  %g of %g, message %q, metrics %v\n", u.Done, u.Total, u.Message, u.Metrics)
		}
	}
	// Output:
	// ::progress 3/10 copying files
	//   3 of 10, message "copying files", metrics map[]
	// ::progress 42.5% uploading
	//   42.5 of 100, message "uploading", metrics map[]
	// ::progress 12/10 an estimate that ran over
	//   10 of 10, message "an estimate that ran over", metrics map[]
	// ::progress {"current":3,"total":4,"message":"indexing","metrics":{"rows":1200}}
	//   3 of 4, message "indexing", metrics map[rows:1200]
	// ::progress {"message":"only a message"}
	//   message "only a message", metrics map[]
	// copying photo.jpg
	//   not progress: a log line
	// ::progressive is not a progress line
	//   not progress: a log line
	// ::progress -1/10
	//   malformed: invalid progress number "-1"
}
