package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// logsCmd prints the log lines of an execution, and with -f follows them.
func logsCmd(newClient func() *client.Client) *cobra.Command {
	var follow bool
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print the log lines of an execution; -f follows them until it ends",
		Long: `Print the log lines of an execution, oldest first: the output of its
exec steps and what Go handlers logged, each with its attempt, step and
stream. The server keeps the newest 1000 lines of each execution.

With -f, keep printing new lines as they come until the execution ends.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			show := func(l conveyor.LogLine) error {
				if output.json() {
					return printJSON(os.Stdout, l)
				}
				_, err := fmt.Println(logText(l))
				return err
			}
			c := newClient()
			if follow {
				return followLogs(cmd.Context(), c, args[0], show)
			}
			lines, err := c.Logs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, l := range lines {
				if err := show(l); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print new lines as they come until the execution ends")
	output = addOutputFlag(cmd)
	return cmd
}

// logText is a log line for people: time, attempt, step, stream, line.
func logText(l conveyor.LogLine) string {
	where := l.Stream
	if l.Step != "" {
		where = l.Step + " " + l.Stream
	}
	return fmt.Sprintf("%s attempt %d %s: %s", clock(l.Time), l.Attempt, where, l.Line)
}

// followLogs prints the lines of an execution as the server stores
// them (its log stream), until it has ended and its last lines are
// printed.
func followLogs(ctx context.Context, c *client.Client, id string, show func(conveyor.LogLine) error) error {
	_, err := c.FollowLogs(ctx, id, 0, show)
	return err
}

// eventsCmd prints the stored events of an execution.
func eventsCmd(newClient func() *client.Client) *cobra.Command {
	var after int64
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "events ID",
		Short: "Print the stored events of an execution, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if after < 0 {
				return fmt.Errorf("--after must be 0 or more, not %d", after)
			}
			c := newClient()
			for {
				// The server answers a page at a time: ask again from
				// the last seq until a page is empty.
				evs, err := c.Events(cmd.Context(), args[0], after)
				if err != nil {
					return err
				}
				if len(evs) == 0 {
					return nil
				}
				for _, ev := range evs {
					if output.json() {
						err = printJSON(os.Stdout, ev)
					} else {
						_, err = fmt.Printf("%d %s %s\n", ev.Seq, clock(ev.Time), eventText(ev))
					}
					if err != nil {
						return err
					}
				}
				after = evs[len(evs)-1].Seq
			}
		},
	}
	cmd.Flags().Int64Var(&after, "after", 0, "only events with a greater seq")
	output = addOutputFlag(cmd)
	return cmd
}
