package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/conveyor-run/conveyor"
)

// Stats counts the server's executions by status, each count stopping
// at conveyor.StatsUpTo.
func (c *Client) Stats(ctx context.Context) (*conveyor.ExecutionStats, error) {
	var s conveyor.ExecutionStats
	return &s, c.do(ctx, http.MethodGet, "/executions/stats", nil, &s)
}

// Throughput returns how many executions started and finished in each of
// the last minutes minutes (0: the server's default, 60), oldest first.
func (c *Client) Throughput(ctx context.Context, minutes int) (*conveyor.Throughput, error) {
	path := "/executions/throughput"
	if minutes != 0 {
		path += "?minutes=" + strconv.Itoa(minutes)
	}
	var t conveyor.Throughput
	return &t, c.do(ctx, http.MethodGet, path, nil, &t)
}
