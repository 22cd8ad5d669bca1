package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// listRecords is the connector's ListRecords: a page of the table's rows
// as the connection's principal (the data plane's ListRows, so its access
// check and page limits apply), parameters $top (default and most:
// keyhold.DefaultRowPage, keyhold.MaxRowPage), $filter (equality, see
// keyhold.ParseRowFilter) and $skiptoken. The body is {"value": [rows],
// "skipToken": …}, skipToken present while more rows may follow; each row
// is its fields, with "id" set to the row's id.
func (h *host) listRecords(ctx context.Context, env, table string, p map[string]any) (wdl.Outputs, error) {
	q := keyhold.RowQuery{}
	switch t := p["$top"].(type) {
	case nil:
	case float64:
		q.Top = int(t)
		if float64(q.Top) != t || q.Top < 1 {
			return wdl.Outputs{}, actionErr("InvalidParameter", 400, false, "parameters.$top %v is not valid: give a whole number from 1 to %d", t, keyhold.MaxRowPage)
		}
	case string:
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return wdl.Outputs{}, actionErr("InvalidParameter", 400, false, "parameters.$top %q is not valid: give a whole number from 1 to %d", keyhold.Clip(t), keyhold.MaxRowPage)
		}
		q.Top = n
	default:
		return wdl.Outputs{}, actionErr("InvalidParameter", 400, false, "parameters.$top must be a number, not %s", keyhold.Clip(fmt.Sprint(t)))
	}
	q.Filter, _ = p["$filter"].(string)
	q.SkipToken, _ = p["$skiptoken"].(string)
	page, err := h.s.cfg.Data.ListRows(ctx, env, table, q)
	if err != nil {
		return wdl.Outputs{}, dataErr(err)
	}
	value := make([]any, 0, len(page.Rows))
	for _, r := range page.Rows {
		row := map[string]any{}
		_ = json.Unmarshal(r.Data, &row)
		if _, ok := row["id"]; !ok {
			row["id"] = r.ID
		}
		value = append(value, row)
	}
	body := map[string]any{"value": value}
	if page.SkipToken != "" {
		body["skipToken"] = page.SkipToken
	}
	return wdl.Outputs{StatusCode: 200, Body: body}, nil
}
