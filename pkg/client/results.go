package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kraken-go/kk/pkg/api"
)

// ResultsQuery filters RunResults; zero fields do not filter.
type ResultsQuery struct {
	Status         string
	Change         string
	MinInstability int
	Name           string // glob: * and ?
	Job            string // job id or name
	Sort           string // relevancy (default), name or status
}

// RunResults returns a run's test results.
func (c *Client) RunResults(ctx context.Context, runID int64, q ResultsQuery) ([]api.TestResult, error) {
	v := url.Values{}
	for k, s := range map[string]string{"status": q.Status, "change": q.Change, "name": q.Name, "job": q.Job, "sort": q.Sort} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.MinInstability > 0 {
		v.Set("min_instability", strconv.Itoa(q.MinInstability))
	}
	return list[api.TestResult](ctx, c, path("runs", id(runID), "results"), v)
}

// RunIssues returns a run's issues; newOnly keeps the new ones.
func (c *Client) RunIssues(ctx context.Context, runID int64, newOnly bool) ([]api.Issue, error) {
	v := url.Values{}
	if newOnly {
		v.Set("new", "1")
	}
	return list[api.Issue](ctx, c, path("runs", id(runID), "issues"), v)
}

// TestHistory returns the results of a test in a branch, newest first
// (limit 0: all).
func (c *Client) TestHistory(ctx context.Context, branchID int64, name string, limit int) ([]api.TestResult, error) {
	v := url.Values{"name": {name}}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	return list[api.TestResult](ctx, c, path("branches", id(branchID), "tests", "history"), v)
}

// FlowData returns the data tool's document of a flow.
func (c *Client) FlowData(ctx context.Context, flowID int64) (api.DataValue, error) {
	var out api.DataValue
	err := c.do(ctx, http.MethodGet, path("flows", id(flowID), "data"), nil, nil, &out)
	return out, err
}
