package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/api"
	"github.com/conveyor-run/conveyor/client"
)

// batchCmd submits a file of executions as one batch.
func batchCmd(newClient func() *client.Client) *cobra.Command {
	var pipeline string
	var tagFlags []string
	var key string
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "batch FILE",
		Short: "Submit executions as one batch, one JSON object a line (FILE - reads stdin); print the batch id",
		Long: `Submit executions as one batch, all or nothing, and print the batch id.

Each non-blank line of FILE is one execution:
  {"pipeline": "resize", "input": {"path": "a.png"}, "tags": {"size": "big"}}
A line may say when its execution may start, "run_at" (an RFC 3339 time)
or "delay" (a Go duration such as "90s"); until then it stays pending.
With --pipeline, each line is only the input, a JSON object:
  {"path": "a.png"}
A bad line is an error naming it, and then nothing is submitted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tags, err := tagsOf(tagFlags)
			if err != nil {
				return err
			}
			in, name := io.Reader(os.Stdin), "stdin"
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, args[0]
			}
			items, err := readBatch(in, name, pipeline)
			if err != nil {
				return err
			}
			c, err := keyed(newClient(), key)
			if err != nil {
				return err
			}
			b, err := c.SubmitBatch(cmd.Context(), items.executions, tags)
			if err != nil {
				return items.locate(err)
			}
			if output.json() {
				return printJSON(os.Stdout, b)
			}
			fmt.Println(b.ID)
			return nil
		},
	}
	output = addOutputFlag(cmd)
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "run every line's input with this pipeline; each line is then only an input")
	cmd.Flags().StringArrayVar(&tagFlags, "tag", nil, "tag every member with key:value (repeatable); a line's own tag wins")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "send this Idempotency-Key: the same batch sent again with it within 24 h prints the first batch's id instead of submitting another")
	return cmd
}

// batchesCmd lists batches, or prints one.
func batchesCmd(newClient func() *client.Client) *cobra.Command {
	var filter conveyor.BatchFilter
	var status string
	var tagFlags []string
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "batches [ID]",
		Short: "List batches, newest first, or show one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient()
			var page *conveyor.BatchPage
			if len(args) == 1 {
				for _, f := range []string{"status", "tag", "limit", "cursor"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s filters the list of batches; it takes no ID", f)
					}
				}
				b, err := c.Batch(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				page = &conveyor.BatchPage{Batches: []*conveyor.Batch{b}}
			} else {
				var err error
				if filter.Tags, err = parseTags(tagFlags); err != nil {
					return err
				}
				filter.Status = conveyor.Status(status)
				if page, err = c.Batches(cmd.Context(), filter); err != nil {
					return err
				}
			}
			defer moreHint(page.NextCursor)
			if output.json() {
				for _, b := range page.Batches {
					if err := printJSON(os.Stdout, b); err != nil {
						return err
					}
				}
				return nil
			}
			w := newTable()
			fmt.Fprintln(w, "ID\tSTATUS\tPROGRESS\tTOTAL\tPENDING\tRUNNING\tCOMPLETED\tFAILED\tCANCELLED\tCREATED\tTAGS")
			for _, b := range page.Batches {
				n := b.Counts
				fmt.Fprintf(w, "%s\t%s\t%.1f%%\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", b.ID, b.Status, b.Progress.Percentage, b.Total,
					n.Pending, n.Running, n.Completed, n.Failed, n.Cancelled, b.CreatedAt.Local().Format(time.DateTime), formatTags(b.Tags))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only batches with this status")
	cmd.Flags().StringArrayVar(&tagFlags, "tag", nil, "only batches with this tag, key:value (repeatable; all must match)")
	cmd.Flags().IntVar(&filter.Limit, "limit", 20, "how many")
	cmd.Flags().StringVar(&filter.Cursor, "cursor", "", "continue a previous listing")
	output = addOutputFlag(cmd)
	return cmd
}

// batchItems are the executions read from a batch file, with where each
// came from so that the server's complaint about one can name its line.
type batchItems struct {
	name       string // of the file, for messages
	executions []conveyor.NewExecution
	lines      []int // lines[i] is the line executions[i] was read from
}

// maxBatchLine is the longest line readBatch takes: no longer than the
// request that will carry it.
const maxBatchLine = api.MaxBatchBodyBytes

// readBatch reads one execution a line from r, skipping blank lines. With
// pipeline set each line is an input, a JSON object; otherwise it is a
// conveyor.NewExecution with a pipeline. A bad line is an error that
// names it, name:line, and then no execution is returned: a batch goes in
// whole or not at all.
func readBatch(r io.Reader, name, pipeline string) (*batchItems, error) {
	items := &batchItems{name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxBatchLine)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		ex, err := parseBatchLine(text, pipeline)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if len(items.executions) == conveyor.MaxBatchSize {
			return nil, fmt.Errorf("%s:%d: a batch holds at most %d executions", name, line, conveyor.MaxBatchSize)
		}
		items.executions = append(items.executions, ex)
		items.lines = append(items.lines, line)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, line+1, maxBatchLine)
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(items.executions) == 0 {
		return nil, fmt.Errorf("%s: no executions", name)
	}
	return items, nil
}

// parseBatchLine reads one non-blank line of a batch file.
func parseBatchLine(text []byte, pipeline string) (conveyor.NewExecution, error) {
	if pipeline != "" {
		if !isJSONObject(text) {
			return conveyor.NewExecution{}, errors.New("want an input, a JSON object, as --pipeline is given")
		}
		return conveyor.NewExecution{Pipeline: pipeline, Input: json.RawMessage(text)}, nil
	}
	var ex conveyor.NewExecution
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields() // a misspelt "pipline" must not pass unnoticed
	if err := dec.Decode(&ex); err != nil {
		var bad *conveyor.Error // a tag's own check, which names the tag
		if errors.As(err, &bad) {
			return ex, err
		}
		return ex, fmt.Errorf(`want {"pipeline": …, "input": {…}, "tags": {…}}: %w`, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ex, errors.New("more than one JSON value on the line")
	}
	switch {
	case ex.Pipeline == "":
		return ex, errors.New(`no "pipeline" (use --pipeline when every line is only an input)`)
	case len(ex.Input) > 0 && string(ex.Input) != "null" && !isJSONObject(ex.Input):
		return ex, errors.New(`"input" must be a JSON object`)
	}
	if err := ex.Tags.Validate(); err != nil {
		return ex, err
	}
	return ex, nil
}

// isJSONObject reports whether b is one JSON object.
func isJSONObject(b []byte) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(b, &obj) == nil && obj != nil
}

var memberIndex = regexp.MustCompile(`^executions\[(\d+)\]`)

// locate adds the file and line to a server error that names a member,
// executions[i]: blank lines make i and the line number differ.
func (b *batchItems) locate(err error) error {
	m := memberIndex.FindStringSubmatch(conveyor.ErrorMessage(err))
	if m == nil {
		return err
	}
	i, convErr := strconv.Atoi(m[1])
	if convErr != nil || i >= len(b.lines) {
		return err
	}
	return fmt.Errorf("%w (%s:%d)", err, b.name, b.lines[i])
}

// parseTags reads --tag filters, each key:value.
func parseTags(flags []string) ([]conveyor.Tag, error) {
	var tags []conveyor.Tag
	for _, f := range flags {
		t, err := conveyor.ParseTag(f)
		if err != nil {
			return nil, fmt.Errorf("--tag: %w", err)
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// tagsOf reads --tag labels, each key:value, with no key twice: nil for
// none.
func tagsOf(flags []string) (conveyor.Tags, error) {
	list, err := parseTags(flags)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	tags := conveyor.Tags{}
	for _, t := range list {
		if _, ok := tags[t.Key]; ok {
			return nil, fmt.Errorf("--tag: key %q given twice", t.Key)
		}
		tags[t.Key] = t.Value
	}
	return tags, tags.Validate()
}

// formatTags writes tags for a table cell: key:value pairs in key order,
// comma-separated; a value that would blur the cell is quoted.
func formatTags(tags conveyor.Tags) string {
	if len(tags) == 0 {
		return "-"
	}
	var cells []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v := tags[k]
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == ',' || r == '"' || r == 0x7f }) {
			v = strconv.Quote(v)
		}
		cells = append(cells, k+":"+v)
	}
	return strings.Join(cells, ",")
}
