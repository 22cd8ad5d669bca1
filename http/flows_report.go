package http

// The tenant-wide flow-run report (issue 16):
//
//	GET /providers/Microsoft.ProcessSimple/scopes/admin/flowRunReport[?startTime=…&endTime=…]
//
// answers keyhold.FlowRunReport: per environment, its runs started in the
// window by status; a customer-key environment's row has its counts only.

import (
	"context"
	nethttp "net/http"
	"net/url"
	"time"

	"github.com/keyhold/keyhold"
)

const flowReportPath = "/providers/Microsoft.ProcessSimple/scopes/admin/flowRunReport"

// flowReportRoutes declares the report; none unless s.Flows also serves
// keyhold.FlowReportService.
func (s *Server) flowReportRoutes() []route {
	rs, ok := s.Flows.(keyhold.FlowReportService)
	if !ok {
		return nil
	}
	return []route{{Method: "GET", Pattern: flowReportPath, Auth: []keyhold.Audience{keyhold.AudienceFlow, keyhold.AudiencePowerApps}, Timeout: apiTimeout,
		Handler: func(w nethttp.ResponseWriter, r *nethttp.Request) error {
			q := r.URL.Query()
			from, err := reportTime(q, "startTime")
			if err != nil {
				return err
			}
			to, err := reportTime(q, "endTime")
			if err != nil {
				return err
			}
			rep, err := rs.FlowRunReport(r.Context(), from, to)
			if err != nil {
				return err
			}
			writeJSON(w, nethttp.StatusOK, rep)
			return nil
		}}}
}

// reportTime reads an RFC 3339 time from the query (zero when absent).
func reportTime(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "%s %q is not an RFC 3339 time: give one such as 2024-05-01T00:00:00Z", name, keyhold.Clip(v))
	}
	return t, nil
}

var _ keyhold.FlowReportService = (*Client)(nil)

// FlowRunReport reads the tenant-wide flow-run report (platform
// administrators only); zero times leave the window to the server.
func (c *Client) FlowRunReport(ctx context.Context, from, to time.Time) (*keyhold.FlowRunReport, error) {
	q := url.Values{}
	if !from.IsZero() {
		q.Set("startTime", from.UTC().Format(time.RFC3339))
	}
	if !to.IsZero() {
		q.Set("endTime", to.UTC().Format(time.RFC3339))
	}
	path := flowReportPath
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out keyhold.FlowRunReport
	if err := c.doFlow(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	if out.Environments == nil {
		out.Environments = []*keyhold.FlowRunReportRow{}
	}
	return &out, nil
}
