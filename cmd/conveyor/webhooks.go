package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor"
	"github.com/conveyor-run/conveyor/client"
)

// webhooksCmd groups the commands on webhook subscriptions. They are
// subcommands, not commands of their own like batch and batches: there
// are five verbs on one noun, and the deliveries belong to a
// subscription.
func webhooksCmd(newClient func() *client.Client) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Manage webhook subscriptions and see their deliveries (ls, add, rm, deliveries, redeliver)",
		Long: `Manage webhook subscriptions: the server signs each event and POSTs it to
the subscription's URL, retrying until the receiver answers 2xx.
See docs/guide.md, "Webhooks", for the body, the signature and the retries.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(webhooksLsCmd(newClient), webhooksAddCmd(newClient), webhooksRmCmd(newClient),
		webhooksDeliveriesCmd(newClient), webhooksRedeliverCmd(newClient))
	return cmd
}

// webhooksLsCmd lists the subscriptions.
func webhooksLsCmd(newClient func() *client.Client) *cobra.Command {
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the webhook subscriptions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hooks, err := newClient().Webhooks(cmd.Context())
			if err != nil {
				return err
			}
			if output.json() {
				for _, h := range hooks {
					if err := printJSON(os.Stdout, h); err != nil {
						return err
					}
				}
				return nil
			}
			w := newTable()
			fmt.Fprintln(w, "ID\tURL\tEVENTS\tPIPELINE\tTAGS\tCREATED\tDISABLED")
			for _, h := range hooks {
				pipeline := "-"
				if h.Pipeline != nil {
					pipeline = *h.Pipeline
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.URL, joinEventTypes(h.Events, ","), pipeline,
					formatTags(h.Tags), h.CreatedAt.Local().Format(time.DateTime), timeCell(h.DisabledAt))
			}
			return w.Flush()
		},
	}
	output = addOutputFlag(cmd)
	return cmd
}

// webhooksAddCmd creates a subscription and prints its secret, the only
// time the server shows it.
func webhooksAddCmd(newClient func() *client.Client) *cobra.Command {
	var events []string
	var pipeline string
	var tagFlags []string
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "add URL --events TYPE[,TYPE...]",
		Short: "Subscribe URL to webhook events; print the id and the secret (shown only this once)",
		Long: `Subscribe URL to webhook events and print the subscription's id and the
secret that signs its deliveries. The server shows the secret only this
once: keep it where the receiver can read it.

Event types: ` + joinEventTypes(conveyor.WebhookEvents, ", ") + `.
--pipeline and --tag narrow the subscription to some executions (a
subscription with --pipeline gets no batch events).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("webhooks add takes one URL: conveyor webhooks add URL --events TYPE[,TYPE...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			tags, err := tagsOf(tagFlags)
			if err != nil {
				return err
			}
			nw := client.NewWebhook{URL: args[0], Pipeline: pipeline, Tags: tags}
			for _, e := range events {
				nw.Events = append(nw.Events, conveyor.WebhookEvent(strings.TrimSpace(e)))
			}
			hook, err := newClient().CreateWebhook(cmd.Context(), nw)
			if err != nil {
				return err
			}
			if output.json() {
				return printJSON(os.Stdout, hook)
			}
			w := newTable()
			fmt.Fprintf(w, "id\t%s\n", hook.ID)
			fmt.Fprintf(w, "secret\t%s\n", hook.Secret)
			if err := w.Flush(); err != nil {
				return err
			}
			// On stderr, so that stdout stays the two fields for a script.
			fmt.Fprintln(os.Stderr, "The secret is shown only this once: keep it to verify the webhook-signature header.")
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&events, "events", nil, "the event types to deliver, comma-separated (repeatable)")
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only executions of this pipeline")
	cmd.Flags().StringArrayVar(&tagFlags, "tag", nil, "only executions (and batches) with this tag, key:value (repeatable; all must match)")
	_ = cmd.MarkFlagRequired("events") // the flag exists: no error
	output = addOutputFlag(cmd)
	return cmd
}

// webhooksRmCmd deletes subscriptions.
func webhooksRmCmd(newClient func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID...",
		Short: "Delete webhook subscriptions and their deliveries",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("webhooks rm takes the ids of the subscriptions to delete")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient()
			for _, id := range args {
				if err := c.DeleteWebhook(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Printf("%s: deleted\n", id)
			}
			return nil
		},
	}
}

// webhooksDeliveriesCmd lists a subscription's deliveries.
func webhooksDeliveriesCmd(newClient func() *client.Client) *cobra.Command {
	filter := conveyor.DeliveryFilter{}
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "deliveries ID",
		Short: "List a webhook subscription's deliveries, newest first, with their status and attempts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			filter.WebhookID = args[0]
			page, err := newClient().Deliveries(cmd.Context(), filter)
			if err != nil {
				return err
			}
			defer moreHint(page.NextCursor)
			if output.json() {
				for _, d := range page.Deliveries {
					if err := printJSON(os.Stdout, d); err != nil {
						return err
					}
				}
				return nil
			}
			w := newTable()
			fmt.Fprintln(w, "ID\tEVENT\tOF\tSTATUS\tATTEMPTS\tLAST ATTEMPT\tNEXT ATTEMPT\tCREATED")
			for _, d := range page.Deliveries {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.EventType, deliverySubject(d), d.Status, len(d.Attempts),
					lastAttempt(d.Attempts), timeCell(d.NextAttemptAt), d.CreatedAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	cmd.Flags().IntVar(&filter.Limit, "limit", 20, "how many")
	cmd.Flags().StringVar(&filter.Cursor, "cursor", "", "continue a previous listing")
	output = addOutputFlag(cmd)
	return cmd
}

// webhooksRedeliverCmd sends a delivery again now.
func webhooksRedeliverCmd(newClient func() *client.Client) *cobra.Command {
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "redeliver ID DELIVERY_ID",
		Short: "Send a delivery of a webhook subscription again now, whatever its status",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return errors.New("webhooks redeliver takes a subscription id and a delivery id (see webhooks deliveries)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := newClient().Redeliver(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if output.json() {
				return printJSON(os.Stdout, d)
			}
			fmt.Printf("%s: redelivery requested (status %s, %d attempts so far)\n", d.ID, d.Status, len(d.Attempts))
			return nil
		},
	}
	output = addOutputFlag(cmd)
	return cmd
}

func joinEventTypes(evs []conveyor.WebhookEvent, sep string) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = string(e)
	}
	return strings.Join(s, sep)
}

// deliverySubject is what a delivery reports on: an execution or a
// batch.
func deliverySubject(d *conveyor.Delivery) string {
	switch {
	case d.ExecutionID != nil:
		return *d.ExecutionID
	case d.BatchID != nil:
		return "batch " + *d.BatchID
	}
	return "-"
}

// lastAttempt is the outcome of the latest attempt for a table cell: the
// receiver's status or the error, and how long it took.
func lastAttempt(as []conveyor.Attempt) string {
	if len(as) == 0 {
		return "-"
	}
	a := as[len(as)-1]
	took := formatDuration(time.Duration(a.DurationMS) * time.Millisecond)
	if a.Error != "" {
		return shortCell(a.Error) + " (" + took + ")"
	}
	return strconv.Itoa(a.StatusCode) + " (" + took + ")"
}

// timeCell is an optional time for a table cell.
func timeCell(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}
