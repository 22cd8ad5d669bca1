package flows

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// newRunID is a run id in Logic Apps' style: sortable by start.
func (s *Service) newRunID() string {
	return fmt.Sprintf("%020d%s", s.clock.Now().UnixNano(), strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
}

// parseBody reads a trigger's JSON body (empty: null).
func parseBody(body json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if len(body) > keyhold.MaxTriggerBodyBytes {
		return nil, keyhold.Errorf(keyhold.CodeRequestTooLarge, "the trigger body is %d bytes: a trigger accepts at most %d", len(body), keyhold.MaxTriggerBodyBytes)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the trigger body is not JSON: %s", keyhold.Clip(err.Error()))
	}
	return v, nil
}

// startRun stores a new run of fd fired with trigger's outputs, sealed,
// and starts it here if the concurrency limits allow (otherwise an engine
// starts it when they do). The state is sealed where the flow is: on the
// platform partition, or under the epoch fd was opened at (SealUnder,
// which reads nothing); the run's insert checks the environment, and
// that epoch, in its own transaction (putChecked). A locked environment
// refuses it (EnvironmentLocked), storing nothing, even if the lock
// committed after fd was opened.
func (s *Service) startRun(ctx context.Context, fd *flowDef, trigger wdl.Outputs, parentRunID, runID string, depth int) (*keyhold.FlowRunRecord, error) {
	if fd.rec.State != keyhold.FlowStarted {
		return nil, keyhold.Errorf(keyhold.CodeConflict, "flow %s is %s: start it (POST …/flows/%s/start) before running it", fd.rec.ID, fd.rec.State, fd.rec.ID)
	}
	epoch := fd.current
	if fd.rec.Epoch == keyhold.PlatformEpoch {
		epoch = keyhold.PlatformEpoch
	} else if epoch == keyhold.PlatformEpoch {
		// Not opened through a check (a bug): never let it fall to the
		// platform partition.
		return nil, keyhold.Errorf(keyhold.CodeInternal, "flow %s was opened without its environment's epoch: its run can't be sealed", fd.rec.ID)
	}
	if runID == "" {
		runID = s.newRunID()
	}
	st := wdl.NewRun(trigger)
	pt, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	now := s.clock.Now().UTC()
	rec := &keyhold.FlowRunRecord{EnvID: fd.rec.EnvID, FlowID: fd.rec.ID, ID: runID, Status: keyhold.RunWaiting, TriggerName: fd.rec.TriggerName,
		ParentRunID: parentRunID, Depth: depth, StartedAt: now, Version: 1, StateVersion: 1, UpdatedAt: now}
	for attempt := 0; ; attempt++ {
		if rec.Sealed, err = s.seal.SealUnder(ctx, rec.EnvID, keyhold.StoreRuns, runItem(rec.FlowID, rec.ID), 1, epoch, pt); err != nil {
			return nil, err
		}
		rec.Epoch = epoch
		err = s.putChecked(ctx, rec.EnvID, &epoch, func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, rec) })
		if errors.Is(err, errEpochMoved) && attempt < 3 {
			continue // rotated since fd was opened: seal under the new epoch
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if c, err := s.claim(ctx, rec); err == nil && c != nil {
		rec = c.rec
		s.spawn(c)
	}
	return rec, nil
}

// RunTrigger runs a flow's manual trigger (a Request trigger: Button,
// PowerApp, PowerAppV2, Skills or Http) with body.
func (s *Service) RunTrigger(ctx context.Context, envID, flowID, trigger string, body json.RawMessage) (*keyhold.FlowRun, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	rec, err := s.runRequest(ctx, envID, flowID, trigger, true, body)
	if err != nil {
		return nil, err
	}
	return toRun(rec, nil), nil
}

// runRequest starts a run of a flow's request trigger (with webhooks, a
// connector webhook trigger too: see triggerOf) with a JSON body.
func (s *Service) runRequest(ctx context.Context, envID, flowID, trigger string, webhooks bool, body json.RawMessage) (*keyhold.FlowRunRecord, error) {
	fd, err := s.triggerOf(ctx, envID, flowID, trigger, webhooks)
	if err != nil {
		return nil, err
	}
	b, err := parseBody(body)
	if err != nil {
		return nil, err
	}
	return s.startRun(ctx, fd, wdl.Outputs{Headers: map[string]string{"Content-Type": "application/json"}, Body: b}, "", "", 0)
}

// requestTrigger opens a flow and checks that trigger is its Request
// trigger.
func (s *Service) requestTrigger(ctx context.Context, envID, flowID, trigger string) (*flowDef, error) {
	return s.triggerOf(ctx, envID, flowID, trigger, false)
}

// triggerOf is requestTrigger; with webhooks, a connector webhook trigger
// (OpenApiConnectionWebhook: Teams) is accepted too. Keyhold has no Teams
// to call it, so the manual run endpoint is its test endpoint: the body
// is the event the connector would deliver.
//
// The flow is read and the environment checked in one read transaction
// (loadFlow): a locked environment's trigger is refused before anything
// is opened.
func (s *Service) triggerOf(ctx context.Context, envID, flowID, trigger string, webhooks bool) (*flowDef, error) {
	return s.loadFlow(ctx, envID, flowID, func(rec *keyhold.FlowRecord) error {
		if rec.TriggerName != trigger {
			return keyhold.Errorf(keyhold.CodeNotFound, "flow %s has no trigger %q: its trigger is %q", flowID, keyhold.Clip(trigger), rec.TriggerName)
		}
		if rec.TriggerType != "Request" && !(webhooks && rec.TriggerType == "OpenApiConnectionWebhook") {
			return keyhold.Errorf(keyhold.CodeConflict, "trigger %q of flow %s is a %s trigger, which can't be run on request", trigger, flowID, rec.TriggerType)
		}
		return nil
	})
}

func toRun(rec *keyhold.FlowRunRecord, st *wdl.RunState) *keyhold.FlowRun {
	r := &keyhold.FlowRun{EnvID: rec.EnvID, FlowID: rec.FlowID, ID: rec.ID, Status: rec.Status, TriggerName: rec.TriggerName,
		ParentRunID: rec.ParentRunID, StartTime: rec.StartedAt, EndTime: rec.EndedAt}
	if r.Status == keyhold.RunWaiting {
		r.Status = keyhold.RunRunning // Power Automate shows a queued run as Running
	}
	if st != nil {
		if st.Error != nil {
			r.Error = &keyhold.FlowRunError{Code: st.Error.Code, Message: st.Error.Message}
		}
		if st.Response != nil {
			r.Response = &keyhold.FlowResponse{StatusCode: st.Response.StatusCode, Headers: st.Response.Headers, Body: st.Response.Body, RunID: rec.ID}
		}
	}
	return r
}

func (s *Service) runRecord(ctx context.Context, envID, flowID, runID string) (rec *keyhold.FlowRunRecord, err error) {
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		rec, err = readRun(ctx, tx, envID, flowID, runID)
		return err
	})
	return rec, err
}

// ListRuns lists a flow's runs, newest first, without opening them.
func (s *Service) ListRuns(ctx context.Context, envID, flowID string) ([]*keyhold.FlowRun, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	if _, err := s.flowRecord(ctx, envID, flowID); err != nil {
		return nil, err
	}
	var recs []*keyhold.FlowRunRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		recs, err = tx.ListFlowRuns(ctx, keyhold.FlowRunFilter{EnvID: envID, FlowID: flowID})
		return err
	})
	out := make([]*keyhold.FlowRun, 0, len(recs))
	for _, r := range recs {
		out = append(out, toRun(r, nil))
	}
	return out, err
}

// GetRun returns a run, with its error if it failed.
func (s *Service) GetRun(ctx context.Context, envID, flowID, runID string) (*keyhold.FlowRun, error) {
	rec, st, err := s.openRun(ctx, envID, flowID, runID)
	if err != nil {
		return nil, err
	}
	return toRun(rec, st), nil
}

// RunActions lists a run's actions in the order they started, with their
// inputs and outputs.
func (s *Service) RunActions(ctx context.Context, envID, flowID, runID string) ([]*keyhold.FlowRunAction, error) {
	_, st, err := s.openRun(ctx, envID, flowID, runID)
	if err != nil {
		return nil, err
	}
	out := make([]*keyhold.FlowRunAction, 0, len(st.Actions))
	for path, a := range st.Actions {
		fa := &keyhold.FlowRunAction{Name: a.Name, Path: path, Type: a.Type, Status: a.Status, StartTime: a.Start, EndTime: a.End, Attempts: a.Attempts, Inputs: a.Inputs}
		if a.Outputs != nil {
			fa.Outputs = a.Outputs
		}
		if a.Error != nil {
			fa.Error = &keyhold.FlowRunError{Code: a.Error.Code, Message: a.Error.Message}
		}
		out = append(out, fa)
	}
	slices.SortFunc(out, func(a, b *keyhold.FlowRunAction) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// CancelRun cancels a run that has not finished. The engine executing it
// finds the run changed at its next save and stops.
func (s *Service) CancelRun(ctx context.Context, envID, flowID, runID string) (*keyhold.FlowRun, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		rec, err := s.runRecord(ctx, envID, flowID, runID)
		if err != nil {
			return nil, err
		}
		if rec.Terminal() {
			return nil, keyhold.Errorf(keyhold.CodeConflict, "run %s has already finished (%s): only a running run can be cancelled", runID, rec.Status)
		}
		r := *rec
		r.Status, r.EndedAt, r.LeaseOwner, r.LeaseUntil = keyhold.RunCancelled, s.clock.Now().UTC(), "", time.Time{}
		r.Version++
		r.UpdatedAt = r.EndedAt
		err = s.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, &r) })
		if keyhold.ErrorCode(err) == keyhold.CodeConflict && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.finished(&r)
		return toRun(&r, nil), nil
	}
}

// ResubmitRun runs the flow again with the trigger outputs of runID.
func (s *Service) ResubmitRun(ctx context.Context, envID, flowID, runID string) (*keyhold.FlowRun, error) {
	_, st, err := s.openRun(ctx, envID, flowID, runID)
	if err != nil {
		return nil, err
	}
	fd, err := s.loadFlow(ctx, envID, flowID, nil)
	if err != nil {
		return nil, err
	}
	nr, err := s.startRun(ctx, fd, st.Trigger, "", "", 0)
	if err != nil {
		return nil, err
	}
	return toRun(nr, nil), nil
}

// Callback URLs. The signature is HMAC-SHA256, under the flow's callback
// key, of "POST\n" | the invoke path | "\n" | sp | "\n" | sv, base64url
// without padding: it binds the environment, flow and trigger (in the
// path) and the permissions (sp) and signature version (sv).
const (
	callbackAPIVersion = "2016-06-01"
	callbackSV         = "1.0"
)

// InvokePath is the path of a request trigger's invoke URL.
func InvokePath(envID, flowID, trigger string) string {
	return "/providers/Microsoft.ProcessSimple/environments/" + envID + "/flows/" + flowID + "/triggers/" + trigger + "/paths/invoke"
}

func callbackSig(key []byte, path, sp, sv string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("POST\n" + path + "\n" + sp + "\n" + sv))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// flowKey returns a flow's callback key, making one if it has none or
// regenerate is set (sealed where the flow is: onPlatform).
func (s *Service) flowKey(ctx context.Context, envID, flowID string, onPlatform, create, regenerate bool) ([]byte, error) {
	var rec *keyhold.FlowKeyRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		rec, err = tx.FlowKey(ctx, envID, flowID)
		return err
	})
	if err != nil && keyhold.ErrorCode(err) != keyhold.CodeNotFound {
		return nil, err
	}
	if rec != nil && !regenerate {
		return s.openAt(ctx, envID, keyhold.StoreFlows, keyItem(flowID), rec.Version, rec.Epoch, rec.Sealed)
	}
	if !create {
		return nil, keyhold.Errorf(keyhold.CodeUnauthorized, "the invoke URL's signature is not valid: ask for the flow's callback URL again (listCallbackUrl)")
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	nk := &keyhold.FlowKeyRecord{EnvID: envID, FlowID: flowID, Version: 1, CreatedAt: s.clock.Now().UTC()}
	if rec != nil {
		nk.Version = rec.Version + 1
	}
	if nk.Sealed, nk.Epoch, err = s.sealAt(ctx, envID, keyhold.StoreFlows, keyItem(flowID), nk.Version, onPlatform, key); err != nil {
		return nil, err
	}
	if err := s.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutFlowKey(ctx, nk) }); err != nil {
		return nil, err
	}
	return key, nil
}

// CallbackURL signs a request trigger's invoke URL.
func (s *Service) CallbackURL(ctx context.Context, envID, flowID, trigger string, regenerate bool) (*keyhold.FlowCallback, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	fd, err := s.requestTrigger(ctx, envID, flowID, trigger)
	if err != nil {
		return nil, err
	}
	key, err := s.flowKey(ctx, envID, flowID, fd.rec.Epoch == keyhold.PlatformEpoch, true, regenerate)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	path := InvokePath(envID, flowID, trigger)
	sp := "/triggers/" + trigger + "/run"
	q := map[string]string{"api-version": callbackAPIVersion, "sp": sp, "sv": callbackSV, "sig": callbackSig(key, path, sp, callbackSV)}
	v := url.Values{}
	for k, x := range q {
		v.Set(k, x)
	}
	return &keyhold.FlowCallback{Value: path + "?" + v.Encode(), Method: "POST", BasePath: path, Queries: q}, nil
}

// InvokeTrigger runs a request trigger called at its signed URL. A wrong
// or missing signature is CodeUnauthorized and starts nothing. It waits
// up to InvokeWait for the run's Response; without one it answers 202
// Accepted with the run's id.
func (s *Service) InvokeTrigger(ctx context.Context, envID, flowID, trigger string, sig keyhold.FlowSignature, body json.RawMessage) (*keyhold.FlowResponse, error) {
	unauthorized := keyhold.Errorf(keyhold.CodeUnauthorized, "the invoke URL's signature is missing or not valid: ask for the flow's callback URL again (listCallbackUrl)")
	if sig.Sig == "" || sig.SV != callbackSV || sig.SP != "/triggers/"+trigger+"/run" {
		return nil, unauthorized
	}
	var frec *keyhold.FlowRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		frec, err = tx.Flow(ctx, envID, flowID)
		return err
	})
	if err != nil {
		return nil, unauthorized // no flow or environment: say no more than a bad signature
	}
	key, err := s.flowKey(ctx, envID, flowID, frec.Epoch == keyhold.PlatformEpoch, false, false)
	if err != nil {
		if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentLocked {
			return nil, err
		}
		return nil, unauthorized
	}
	want := callbackSig(key, InvokePath(envID, flowID, trigger), sig.SP, sig.SV)
	clear(key)
	if !hmac.Equal([]byte(want), []byte(sig.Sig)) {
		return nil, unauthorized
	}
	run, err := s.runRequest(ctx, envID, flowID, trigger, false, body)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.InvokeWait)
	defer cancel()
	end, err := s.waitRun(wctx, run)
	if err == nil {
		if st, err := s.openState(ctx, end); err == nil && st.Response != nil {
			return &keyhold.FlowResponse{StatusCode: st.Response.StatusCode, Headers: st.Response.Headers, Body: st.Response.Body, RunID: run.ID}, nil
		}
	}
	return &keyhold.FlowResponse{StatusCode: 202, RunID: run.ID}, nil
}
