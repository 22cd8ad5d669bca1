package flows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// connector runs a connector action on the environment's own data through
// an OAuth connection, as the connection's principal, through its grant
// (actAs): the data plane authorizes it as it would that principal's own
// request, and a grant that no longer redeems fails the action with
// ConnectionUnauthenticated. Operations
// (Dataverse's names): CreateRecord, GetItem, ListRecords, UpdateRecord,
// DeleteRecord on rows (parameters entityName, recordId, item/<field>;
// ListRecords: $top, $filter, $skiptoken), and
// GetFileContent, CreateFile on files (parameters name, body).
func (h *host) connector(ctx context.Context, c wdl.Call, in map[string]any) (wdl.Outputs, error) {
	if h.s.cfg.Data == nil {
		return wdl.Outputs{}, actionErr("ConnectorNotAvailable", 503, false, "this server runs no data plane for connector actions")
	}
	hostIn, _ := in["host"].(map[string]any)
	p, _ := in["parameters"].(map[string]any)
	op, _ := hostIn["operationId"].(string)
	refName := ""
	if conn, ok := hostIn["connection"].(map[string]any); ok {
		refName, _ = conn["name"].(string)
		if strings.HasPrefix(refName, "@") { // @parameters('$connections')['ref']['connectionId']
			if i := strings.Index(refName, "['"); i >= 0 {
				rest := refName[i+2:]
				refName = rest[:max(strings.Index(rest, "'"), 0)]
			}
		}
	}
	if refName == "" {
		refName, _ = hostIn["connectionName"].(string)
	}
	ref, ok := h.fd.refs[refName]
	if !ok {
		return wdl.Outputs{}, actionErr("ConnectionReferenceNotFound", 400, false, "the action names connection reference %q, which the flow's connectionReferences do not hold", keyhold.Clip(refName))
	}
	env := h.fd.rec.EnvID
	rec, err := h.s.connRecord(ctx, env, ref.API, ref.ConnectionName)
	if keyhold.ErrorCode(err) == keyhold.CodeConnectionNotFound {
		return wdl.Outputs{}, actionErr("ConnectionNotFound", 404, false, "connection %q of api %s was not found in environment %s: create it (keyhold connection create)", ref.ConnectionName, ref.API, env)
	} else if err != nil {
		return wdl.Outputs{}, err
	}
	if rec.Kind != keyhold.ConnectionOAuth {
		return wdl.Outputs{}, actionErr("ConnectionKindNotSupported", 400, false, "connection %q is %s: connector actions on the environment's data need an OAuth connection", rec.Name, rec.Kind)
	}
	as, err := h.s.actAs(ctx, rec)
	if keyhold.ErrorCode(err) == keyhold.CodeConnectionUnauthenticated {
		return wdl.Outputs{}, actionErr(keyhold.CodeConnectionUnauthenticated, 401, false, "%s", keyhold.ErrorMessage(err))
	} else if err != nil {
		return wdl.Outputs{}, err // locked: the run pauses
	}
	actx := keyhold.NewContext(ctx, as)
	table, _ := p["entityName"].(string)
	id := fmt.Sprint(p["recordId"])
	item := map[string]any{}
	for k, v := range p {
		if f, ok := strings.CutPrefix(k, "item/"); ok {
			item[f] = v
		}
	}
	if m, ok := p["item"].(map[string]any); ok {
		for k, v := range m {
			item[k] = v
		}
	}
	switch op {
	case "CreateRecord":
		// The id derives from the run and the action's path, so an
		// action repeated after a crash writes the same row again.
		h.l.mu.Lock()
		runID := h.l.rec.ID
		h.l.mu.Unlock()
		sum := sha256.Sum256([]byte(runID + "\x00" + c.Path))
		id = hex.EncodeToString(sum[:12])
		item["id"] = id
		return h.putRow(actx, env, table, id, item, 201)
	case "GetItem":
		row, err := h.s.cfg.Data.GetRow(actx, env, table, id)
		if err != nil {
			return wdl.Outputs{}, dataErr(err)
		}
		var v any
		_ = json.Unmarshal(row.Data, &v)
		return wdl.Outputs{StatusCode: 200, Body: v}, nil
	case "ListRecords":
		return h.listRecords(actx, env, table, p)
	case "UpdateRecord":
		row, err := h.s.cfg.Data.GetRow(actx, env, table, id)
		if err != nil {
			return wdl.Outputs{}, dataErr(err)
		}
		cur := map[string]any{}
		_ = json.Unmarshal(row.Data, &cur)
		for k, v := range item {
			cur[k] = v
		}
		return h.putRow(actx, env, table, id, cur, 200)
	case "DeleteRecord":
		if err := h.s.cfg.Data.DeleteRow(actx, env, table, id); err != nil && keyhold.ErrorCode(err) != keyhold.CodeRowNotFound {
			return wdl.Outputs{}, dataErr(err)
		}
		return wdl.Outputs{StatusCode: 204}, nil
	case "CreateFile":
		name, _ := p["name"].(string)
		content := fmt.Sprint(p["body"])
		if s, ok := p["body"].(string); ok {
			content = s
		}
		fi, err := h.s.cfg.Data.PutFile(actx, env, name, strings.NewReader(content))
		if err != nil {
			return wdl.Outputs{}, dataErr(err)
		}
		return wdl.Outputs{StatusCode: 200, Body: map[string]any{"name": fi.Name, "size": float64(fi.Size)}}, nil
	case "GetFileContent":
		name, _ := p["name"].(string)
		_, r, err := h.s.cfg.Data.OpenFile(actx, env, name)
		if err != nil {
			return wdl.Outputs{}, dataErr(err)
		}
		defer r.Close()
		b, err := io.ReadAll(io.LimitReader(r, h.s.cfg.MaxResponseBytes+1))
		if err != nil {
			return wdl.Outputs{}, dataErr(err)
		}
		if int64(len(b)) > h.s.cfg.MaxResponseBytes {
			return wdl.Outputs{}, actionErr("ResponseTooLarge", 400, false, "file %q is over %d bytes, the action's limit", name, h.s.cfg.MaxResponseBytes)
		}
		return wdl.Outputs{StatusCode: 200, Body: string(b)}, nil
	}
	return wdl.Outputs{}, actionErr("OperationNotSupported", 400, false, "connector operation %q is not supported: use CreateRecord, GetItem, ListRecords, UpdateRecord, DeleteRecord, CreateFile or GetFileContent", keyhold.Clip(op))
}

func (h *host) putRow(ctx context.Context, env, table, id string, item map[string]any, status int) (wdl.Outputs, error) {
	b, err := json.Marshal(item)
	if err != nil {
		return wdl.Outputs{}, actionErr("InvalidBody", 400, false, "%v", err)
	}
	if _, err := h.s.cfg.Data.PutRow(ctx, env, table, id, b); err != nil {
		return wdl.Outputs{}, dataErr(err)
	}
	return wdl.Outputs{StatusCode: status, Body: item}, nil
}

// dataErr turns the data plane's refusal into the action's failure; a
// locked environment (or a store failure) is not the action's: the run
// pauses and resumes.
func dataErr(err error) error {
	code := keyhold.ErrorCode(err)
	switch code {
	case keyhold.CodeEnvironmentLocked, keyhold.CodeServiceUnavailable, keyhold.CodeInternal, "":
		return err
	}
	msg := err.Error()
	if e, ok := err.(*keyhold.Error); ok {
		msg = e.Message
	}
	status := 400
	switch keyhold.ClassOf(code) {
	case keyhold.ClassNotFound:
		status = 404
	case keyhold.ClassForbidden:
		status = 403
	case keyhold.ClassConflict:
		status = 409
	}
	return actionErr(code, status, false, "%s", msg)
}
