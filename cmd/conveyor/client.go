package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"
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

	cmds := []*cobra.Command{
		runCmd(newClient), watchCmd(newClient), getCmd(newClient), lsCmd(newClient), cancelCmd(newClient),
		retryCmd(newClient), rmCmd(newClient),
		logsCmd(newClient), eventsCmd(newClient), pipelinesCmd(newClient), batchCmd(newClient), batchesCmd(newClient),
		webhooksCmd(newClient),
	}
	for _, c := range cmds {
		addServerFlags(c, addServerFlag)
	}
	return cmds
}

// addServerFlags gives every command that runs in the tree of cmd the
// server flags: a group such as webhooks only holds its subcommands.
func addServerFlags(cmd *cobra.Command, add func(*cobra.Command) *cobra.Command) {
	if cmd.Runnable() {
		add(cmd)
	}
	for _, sub := range cmd.Commands() {
		addServerFlags(sub, add)
	}
}

// getCmd prints an execution.
func getCmd(newClient func() *client.Client) *cobra.Command {
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Print an execution",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ex, err := newClient().Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output.json() {
				return printJSON(os.Stdout, ex)
			}
			return printExecution(ex)
		},
	}
	output = addOutputFlag(cmd)
	return cmd
}

// printExecution writes an execution as a field a line.
func printExecution(ex *conveyor.Execution) error {
	w := newTable()
	fmt.Fprintf(w, "id\t%s\n", ex.ID)
	fmt.Fprintf(w, "pipeline\t%s\n", ex.Pipeline)
	fmt.Fprintf(w, "status\t%s\n", ex.Status)
	fmt.Fprintf(w, "attempt\t%d\n", ex.Attempt)
	if ex.Progress != nil {
		fmt.Fprintf(w, "progress\t%s\n", progressText(ex.Progress))
	}
	fmt.Fprintf(w, "created\t%s\n", ex.CreatedAt.Local().Format(time.DateTime))
	if ex.RunAt != nil {
		fmt.Fprintf(w, "starts at\t%s\n", ex.RunAt.Local().Format(time.DateTime))
	}
	if ex.RetryAt != nil {
		fmt.Fprintf(w, "retry at\t%s\n", ex.RetryAt.Local().Format(time.DateTime))
	}
	if ex.StartedAt != nil {
		fmt.Fprintf(w, "duration\t%s\n", formatDuration(runTime(ex)))
	}
	fmt.Fprintf(w, "tags\t%s\n", formatTags(ex.Tags))
	if ex.BatchID != nil {
		fmt.Fprintf(w, "batch\t%s\n", *ex.BatchID)
	}
	if ex.RetryOf != nil {
		fmt.Fprintf(w, "retry of\t%s\n", *ex.RetryOf)
	}
	if len(ex.Input) > 0 && string(ex.Input) != "null" {
		fmt.Fprintf(w, "input\t%s\n", ex.Input)
	}
	if len(ex.Result) > 0 && string(ex.Result) != "null" {
		fmt.Fprintf(w, "result\t%s\n", ex.Result)
	}
	if ex.Error != nil {
		fmt.Fprintf(w, "error\t%s\n", ex.Error.Error())
	}
	return w.Flush()
}

// pipelinesCmd lists the pipelines, or prints one.
func pipelinesCmd(newClient func() *client.Client) *cobra.Command {
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "pipelines [NAME]",
		Short: "List the server's pipelines, or show one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient()
			var ps []conveyor.PipelineInfo
			if len(args) == 1 {
				p, err := c.Pipeline(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				ps = append(ps, *p)
			} else {
				var err error
				if ps, err = c.Pipelines(cmd.Context()); err != nil {
					return err
				}
			}
			if output.json() {
				for _, p := range ps {
					if err := printJSON(os.Stdout, p); err != nil {
						return err
					}
				}
				return nil
			}
			w := newTable()
			if len(args) == 1 {
				p := ps[0]
				fmt.Printf("%s: %s pipeline, %d retries", p.Name, p.Kind, p.Retries)
				if p.Retries > 0 {
					fmt.Printf(" (waits %s, %s, up to %s)", p.RetryDelay, p.RetryBackoff, p.RetryMaxDelay)
				}
				if p.Resume {
					fmt.Print(", resumes from checkpoints")
				}
				if p.Timeout != "" {
					fmt.Printf(", timeout %s", p.Timeout)
				}
				if p.Description != "" {
					fmt.Printf(": %s", p.Description)
				}
				fmt.Println()
				fmt.Fprintln(w, "STEP\tKIND\tNAME\tTIMEOUT")
				for i, st := range p.Steps {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", i+1, st.Kind, st.Name, cmp.Or(st.Timeout, "-"))
				}
				return w.Flush()
			}
			fmt.Fprintln(w, "NAME\tKIND\tSTEPS\tDESCRIPTION")
			for _, p := range ps {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", p.Name, p.Kind, len(p.Steps), p.Description)
			}
			return w.Flush()
		},
	}
	output = addOutputFlag(cmd)
	return cmd
}

// lsCmd lists executions.
func lsCmd(newClient func() *client.Client) *cobra.Command {
	var filter conveyor.ListFilter
	var status string
	var lsTags []string
	var output *outputFormat
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
			defer moreHint(page.NextCursor)
			if output.json() {
				for _, ex := range page.Executions {
					if err := printJSON(os.Stdout, ex); err != nil {
						return err
					}
				}
				return nil
			}
			w := newTable()
			fmt.Fprintln(w, "ID\tPIPELINE\tSTATUS\tATTEMPT\tPROGRESS\tDURATION\tCREATED\tTAGS\tERROR")
			for _, ex := range page.Executions {
				duration := "-"
				if ex.StartedAt != nil {
					duration = formatDuration(runTime(ex))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", ex.ID, ex.Pipeline, ex.Status, ex.Attempt, percent(ex.Progress),
					duration, ex.CreatedAt.Local().Format(time.DateTime), formatTags(ex.Tags), errorCell(ex.Error))
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
	output = addOutputFlag(ls)
	return ls
}

// errorCell is an error for a table cell: its code and the start of its
// message, on one line.
func errorCell(e *conveyor.Error) string {
	if e == nil {
		return "-"
	}
	return shortCell(e.Error())
}

// shortCell is text for a table cell: on one line, and cut to its start
// when long.
func shortCell(s string) string {
	const most = 60
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > most {
		s = string(r[:most-1]) + "…"
	}
	return s
}

// cancelCmd cancels an execution or a batch. A batch is cancelled
// with --batch rather than by a command of its own: the verb stays one
// command, as ls --batch filters by one.
func cancelCmd(newClient func() *client.Client) *cobra.Command {
	var cancelBatch string
	var output *outputFormat
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
				if output.json() {
					return printJSON(os.Stdout, b)
				}
				fmt.Printf("batch %s: cancel requested (status %s, %d of %d ended)\n", b.ID, b.Status, b.Counts.Final(), b.Total)
				return nil
			}
			ex, err := newClient().Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output.json() {
				return printJSON(os.Stdout, ex)
			}
			fmt.Printf("%s: cancel requested (status %s)\n", ex.ID, ex.Status)
			return nil
		},
	}
	cancel.Flags().StringVar(&cancelBatch, "batch", "", "cancel every member of this batch that has not ended, instead of one execution")
	output = addOutputFlag(cancel)
	return cancel
}

func percent(p *conveyor.Progress) string {
	if p == nil || p.Percentage == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p.Percentage)
}
