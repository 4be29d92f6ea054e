package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// clientCmds are the commands that talk to a running server.
func clientCmds() []*cobra.Command {
	server := os.Getenv("CONVEYOR_SERVER")
	if server == "" {
		server = defaultServerURL
	}
	apiKey := os.Getenv("CONVEYOR_API_KEY")
	newClient := func() *client.Client { return client.New(server, nil).WithAPIKey(apiKey) }
	addServerFlag := func(cmd *cobra.Command) *cobra.Command {
		cmd.Flags().StringVar(&server, "server", server, "server URL [CONVEYOR_SERVER]")
		cmd.Flags().StringVar(&apiKey, "api-key", apiKey, "the server's API key [CONVEYOR_API_KEY]")
		return cmd
	}

	var watchBatchID string
	watchCmd := &cobra.Command{
		Use:   "watch ID... | --batch ID",
		Short: "Watch executions, or a batch, live until they end (exit 1 unless all complete)",
		Args: func(_ *cobra.Command, args []string) error {
			if n := len(args); watchBatchID == "" && n == 0 || watchBatchID != "" && n != 0 {
				return errors.New("watch takes execution IDs, or --batch and a batch ID")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if watchBatchID != "" {
				return watchBatch(cmd.Context(), newClient(), watchBatchID)
			}
			return watch(cmd.Context(), newClient(), args)
		},
	}
	watchCmd.Flags().StringVar(&watchBatchID, "batch", "", "watch every member of this batch and the batch's counts, instead of executions")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Print an execution as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ex, err := newClient().Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(ex)
		},
	}

	pipelines := &cobra.Command{
		Use:   "pipelines [NAME]",
		Short: "List the server's pipelines, or show one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient()
			if len(args) == 1 {
				p, err := c.Pipeline(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(p)
			}
			ps, err := c.Pipelines(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tKIND\tSTEPS\tDESCRIPTION")
			for _, p := range ps {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", p.Name, p.Kind, len(p.Steps), p.Description)
			}
			return w.Flush()
		},
	}

	cmds := []*cobra.Command{
		runCmd(newClient), watchCmd, get, lsCmd(newClient), cancelCmd(newClient), pipelines,
		batchCmd(newClient), batchesCmd(newClient),
	}
	for _, c := range cmds {
		addServerFlag(c)
	}
	return cmds
}

// runCmd starts an execution and watches it.
func runCmd(newClient func() *client.Client) *cobra.Command {
	var input string
	var detach bool
	var runTags []string
	run := &cobra.Command{
		Use:   "run PIPELINE",
		Short: "Start an execution and watch it to the end (exit 1 unless it completes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in json.RawMessage
			if input != "" {
				if !json.Valid([]byte(input)) {
					return fmt.Errorf("--input is not valid JSON: %s", input)
				}
				in = json.RawMessage(input)
			}
			tags, err := tagsOf(runTags)
			if err != nil {
				return err
			}
			c := newClient()
			ex, err := c.SubmitWithTags(cmd.Context(), args[0], in, tags)
			if err != nil {
				return err
			}
			if detach {
				fmt.Println(ex.ID)
				return nil
			}
			return watch(cmd.Context(), c, []string{ex.ID})
		},
	}
	run.Flags().StringVar(&input, "input", "", "input as a JSON object")
	run.Flags().BoolVarP(&detach, "detach", "d", false, "print the execution id and return at once")
	run.Flags().StringArrayVar(&runTags, "tag", nil, "tag the execution with key:value (repeatable)")
	return run
}

// lsCmd lists executions.
func lsCmd(newClient func() *client.Client) *cobra.Command {
	var filter conveyor.ListFilter
	var status string
	var lsTags []string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List executions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if filter.Tags, err = parseTags(lsTags); err != nil {
				return err
			}
			filter.Status = conveyor.Status(status)
			page, err := newClient().List(cmd.Context(), filter)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tPIPELINE\tSTATUS\tPROGRESS\tCREATED\tTAGS")
			for _, ex := range page.Executions {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ex.ID, ex.Pipeline, ex.Status, percent(ex.Progress), ex.CreatedAt.Local().Format(time.DateTime), formatTags(ex.Tags))
			}
			if page.NextCursor != nil {
				fmt.Fprintf(w, "more: --cursor %s\n", *page.NextCursor)
			}
			return w.Flush()
		},
	}
	ls.Flags().StringVar(&status, "status", "", "only executions with this status")
	ls.Flags().StringVar(&filter.Pipeline, "pipeline", "", "only executions of this pipeline")
	ls.Flags().IntVar(&filter.Limit, "limit", 20, "how many")
	ls.Flags().StringVar(&filter.Cursor, "cursor", "", "continue a previous listing")
	ls.Flags().StringArrayVar(&lsTags, "tag", nil, "only executions with this tag, key:value (repeatable; all must match)")
	ls.Flags().StringVar(&filter.Batch, "batch", "", "only the members of this batch")
	return ls
}

// cancelCmd cancels an execution or a batch. A batch is cancelled
// with --batch rather than by a command of its own: the verb stays one
// command, as ls --batch filters by one.
func cancelCmd(newClient func() *client.Client) *cobra.Command {
	var cancelBatch string
	cancel := &cobra.Command{
		Use:   "cancel ID | --batch ID",
		Short: "Cancel an execution, or every member of a batch that has not ended",
		Args: func(_ *cobra.Command, args []string) error {
			if n := len(args); cancelBatch == "" && n != 1 || cancelBatch != "" && n != 0 {
				return errors.New("cancel takes an execution ID, or --batch and a batch ID")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cancelBatch != "" {
				b, err := newClient().CancelBatch(cmd.Context(), cancelBatch)
				if err != nil {
					return err
				}
				fmt.Printf("batch %s: cancel requested (status %s, %d of %d ended)\n", b.ID, b.Status, b.Counts.Final(), b.Total)
				return nil
			}
			ex, err := newClient().Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Printf("%s: cancel requested (status %s)\n", ex.ID, ex.Status)
			return nil
		},
	}
	cancel.Flags().StringVar(&cancelBatch, "batch", "", "cancel every member of this batch that has not ended, instead of one execution")
	return cancel
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func percent(p *conveyor.Progress) string {
	if p == nil || p.Percentage == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p.Percentage)
}

// errNotCompleted makes the process exit 1 when a watched execution did
// not complete.
type errNotCompleted []string

func (e errNotCompleted) Error() string {
	return strings.Join(e, "; ")
}

// watch streams the executions until all have ended: live bars on a
// terminal, one line per event otherwise.
func watch(ctx context.Context, c *client.Client, ids []string) error {
	var view watchView = &lineView{out: os.Stdout}
	if isTerminal(os.Stderr) {
		view = newBarView(os.Stderr, ids)
	}
	results := make(chan error, len(ids))
	for _, id := range ids {
		go func() { results <- watchOne(ctx, c, id, view) }()
	}
	var failed errNotCompleted
	for range ids {
		if err := <-results; err != nil {
			failed = append(failed, err.Error())
		}
	}
	view.wait()
	if failed != nil {
		return failed
	}
	return nil
}

func watchOne(ctx context.Context, c *client.Client, id string, view watchView) error {
	s, err := c.Watch(ctx, id)
	if err != nil {
		view.end(id, nil)
		return fmt.Errorf("%s: %w", id, err)
	}
	defer s.Close()
	var last conveyor.Event
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			view.end(id, nil)
			return fmt.Errorf("%s: %w", id, err)
		}
		last = ev
		view.show(ev)
	}
	view.end(id, &last)
	switch last.Type {
	case conveyor.EventCompleted:
		return nil
	case conveyor.EventFailed:
		return fmt.Errorf("%s failed: %w", id, last.Error)
	default:
		return fmt.Errorf("%s %s", id, last.Type)
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
