package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// retryCmd runs a final execution again as a new one and, with --watch,
// watches it as run does.
func retryCmd(newClient func() *client.Client) *cobra.Command {
	var watchIt bool
	var opts watchOpts
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Run a failed or cancelled execution again as a new execution, and print its id",
		Long: `Run a failed or cancelled execution again as a new execution, and print its id.

The new execution has the same pipeline, input and tags (and the same
own webhook), and names the original in retry_of; it is in no batch. The
execution must have ended (pending or running is a conflict).

With --watch it watches the new execution to the end as run does (exit 1
unless it completes).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient()
			ex, err := c.Retry(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if watchIt {
				if !opts.output.json() {
					fmt.Printf("%s: retry of %s\n", ex.ID, args[0])
				}
				return watch(cmd.Context(), c, []*conveyor.Execution{ex}, opts)
			}
			if opts.output.json() {
				return printJSON(os.Stdout, ex)
			}
			fmt.Println(ex.ID)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&watchIt, "watch", "w", false, "watch the new execution to the end, as run does")
	cmd.Flags().BoolVar(&opts.cancelOnInterrupt, "cancel-on-interrupt", false, "with --watch, on Ctrl-C cancel the new execution and wait for its end")
	opts.output = addOutputFlag(cmd)
	return cmd
}
