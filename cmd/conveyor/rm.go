package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor/client"
)

// rmCmd deletes final executions, as webhooks rm deletes subscriptions.
func rmCmd(newClient func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID...",
		Short: "Delete final executions with their events, logs and data",
		Long: `Delete final executions with their events, logs and data.

Each must have ended (completed, failed or cancelled): a pending or
running execution is a conflict, to cancel first. A batch goes with the
last of its members. A server started with --retention deletes final
executions older than that by itself.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("rm takes the ids of the executions to delete")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient()
			for _, id := range args {
				if err := c.Delete(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Printf("%s: deleted\n", id)
			}
			return nil
		},
	}
}

// retentionValue is the value of serve's --retention: a Go duration
// (12h, 90m) or a number of days (30d); 0 keeps executions forever.
type retentionValue struct{ d *time.Duration }

const day = 24 * time.Hour

func (v retentionValue) String() string {
	switch d := *v.d; {
	case d == 0:
		return "0"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	default:
		return d.String()
	}
}

func (v retentionValue) Set(s string) error {
	bad := fmt.Errorf("want a duration such as 30d, 12h or 90m (0: keep forever), not %q", s)
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("must not be negative (0: keep forever), got %s", s)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > int64(1<<63-1)/int64(day) {
			return bad
		}
		*v.d = time.Duration(n) * day
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return bad
	}
	*v.d = d
	return nil
}

func (retentionValue) Type() string { return "duration" }
