package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// outputFormat is the value of -o, --output: "text" for people, "json"
// for programs. Every command that prints something takes it, through
// addOutputFlag, so that the flag means the same everywhere.
type outputFormat string

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }

func (o *outputFormat) Set(v string) error {
	if v != "text" && v != "json" {
		return fmt.Errorf("want text or json, not %q", v)
	}
	*o = outputFormat(v)
	return nil
}

// json reports whether the output is JSON.
func (o *outputFormat) json() bool { return *o == "json" }

// addOutputFlag gives cmd the -o flag.
func addOutputFlag(cmd *cobra.Command) *outputFormat {
	o := outputFormat("text")
	cmd.Flags().VarP(&o, "output", "o", "text, or json: one JSON object a line")
	return &o
}

// printJSON writes v as one line of JSON. A list is printed one item a
// line, never as one array, so that a listing, a log and a stream of
// events all read the same way with jq or line by line.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// newTable writes aligned columns to stdout; Flush prints them.
func newTable() *tabwriter.Writer {
	return tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
}

// moreHint tells where a listing goes on. It goes to stderr, so that
// stdout stays the listing alone, whatever its format.
func moreHint(next *string) {
	if next != nil {
		fmt.Fprintf(os.Stderr, "more: --cursor %s\n", *next)
	}
}
