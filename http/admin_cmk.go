package http

import (
	"encoding/json"
	nethttp "net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
)

// The admin center's customer-managed key pages (Security → Data and
// privacy → Customer-managed key in the real center): the enterprise
// policies and the environments with policies, a policy's page to add
// and remove environments, and an operation's live progress. Links and
// unlinks go through the CMK service, as the API's routes do.

// cmkRow is a policy on the Enterprise policies tab.
type cmkRow struct {
	Policy *keyhold.EnterprisePolicy
	Vault  string // the key vault's name
	Path   string // the admin center's path of its page
	Linked int
}

type cmkData struct {
	Tab      string
	Policies []cmkRow
	Links    []*keyhold.PolicyLink
}

// policyPagePath is the admin center's path of a policy's page.
func policyPagePath(p *keyhold.EnterprisePolicy) string {
	return adminPrefix + "/cmk/policies/" + url.PathEscape(p.SubscriptionID) + "/" + url.PathEscape(p.ResourceGroup) + "/" + url.PathEscape(p.Name)
}

// vaultName is the last segment of a key vault's resource id.
func vaultName(p *keyhold.EnterprisePolicy) string {
	if p.External != nil {
		return p.External.URI
	}
	return path.Base(p.KeyVaultID)
}

// adminCMK: GET /admin/cmk?tab=policies|environments.
func (s *Server) adminCMK(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	d := &cmkData{Tab: "policies"}
	if r.URL.Query().Get("tab") == "environments" {
		d.Tab = "environments"
	}
	v.Title, v.Nav, v.Data = "Customer-managed key", "cmk", d
	fail := func(err error) error {
		msg, status, err := adminRefusal(err)
		if err != nil {
			return err
		}
		v.Error = msg
		return renderAdmin(w, status, "cmk", v)
	}
	if s.CMK == nil || s.Policies.Service == nil || s.ARM.Resources == nil {
		return fail(keyhold.Errorf(keyhold.CodeNotSupported, "this server serves no customer-managed keys"))
	}
	links, err := s.CMK.PolicyLinks(r.Context())
	if err != nil {
		return fail(err)
	}
	d.Links = links
	if d.Tab == "policies" {
		subs, err := s.ARM.Resources.Subscriptions(r.Context())
		if err != nil {
			return fail(err)
		}
		for _, sub := range subs {
			ps, err := s.Policies.Service.ListBySubscription(r.Context(), sub.ID)
			if err != nil {
				return fail(err)
			}
			for _, p := range ps {
				row := cmkRow{Policy: p, Vault: vaultName(p), Path: policyPagePath(p)}
				for _, l := range links {
					if l.Policy != nil && l.Policy.SystemID == p.SystemID {
						row.Linked++
					}
				}
				d.Policies = append(d.Policies, row)
			}
		}
		slices.SortFunc(d.Policies, func(a, b cmkRow) int { return strings.Compare(a.Policy.Name, b.Policy.Name) })
	}
	return renderAdmin(w, nethttp.StatusOK, "cmk", v)
}

// candidate is an environment offered on a policy's Add environment
// list, with what stops it, if anything.
type candidate struct {
	Env     *keyhold.Environment
	Blocker string // "" when it can be added
}

type policyPageData struct {
	Policy     *keyhold.EnterprisePolicy
	Vault      string
	Path       string
	Linked     []*keyhold.PolicyLink
	Candidates []candidate
	Others     int // environments in other regions, not offered
	// ReadOnly is why the caller may read the policy but not add or
	// remove environments (the API's refusal), "" when they may.
	ReadOnly string
	Access   *accessData
	// Versions are the key's versions and what depends on each;
	// VersionsError the service's refusal to say.
	Versions      []*keyhold.KeyVersionUsage
	VersionsError string
}

// adminPolicyView fills v with a policy's page.
func (s *Server) adminPolicyView(r *nethttp.Request, v *adminView) error {
	if s.CMK == nil || s.Policies.Service == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server serves no customer-managed keys")
	}
	ctx := r.Context()
	p, err := s.Policies.Service.Get(ctx, r.PathValue("sub"), r.PathValue("rg"), r.PathValue("name"))
	if err != nil {
		return err
	}
	d := &policyPageData{Policy: p, Vault: vaultName(p), Path: policyPagePath(p)}
	v.Title, v.Nav, v.Data = "Enterprise policy "+p.Name, "cmk", d
	d.Access = s.adminAccess(r, p.ID(), d.Path, []string{keyhold.RoleReader})
	// A Reader of the policy who is no platform administrator sees it,
	// with the buttons disabled and the reason the API gives.
	readOnly := func(err error) error {
		msg, status, err := adminRefusal(err)
		if err != nil || status != nethttp.StatusForbidden {
			return err
		}
		d.ReadOnly = msg
		return nil
	}
	links, err := s.CMK.PolicyLinks(ctx)
	if err != nil {
		return readOnly(err)
	}
	for _, l := range links {
		if l.Policy != nil && l.Policy.SystemID == p.SystemID {
			d.Linked = append(d.Linked, l)
		}
	}
	envs, err := s.Environments.ListEnvironments(ctx)
	if err != nil {
		return readOnly(err)
	}
	for _, e := range envs {
		switch {
		case e.PolicySystemID == p.SystemID:
			continue
		case !strings.EqualFold(e.Location, p.Location):
			d.Others++
			continue
		}
		c := candidate{Env: e}
		switch {
		case !e.Managed:
			c.Blocker = "Turn on Managed Environment first."
		case e.State == keyhold.StateLocked:
			c.Blocker = "Locked: re-enable it first."
		case e.RestoreOperationID != "":
			c.Blocker = "A restore or copy is running."
		}
		d.Candidates = append(d.Candidates, c)
	}
	slices.SortFunc(d.Candidates, func(a, b candidate) int { return strings.Compare(a.Env.DisplayName, b.Env.DisplayName) })
	if d.Versions, err = s.CMK.KeyVersionUsage(ctx, p.ID()); err != nil {
		msg, _, ferr := adminRefusal(err)
		if ferr != nil {
			return ferr
		}
		d.VersionsError = msg
	}
	return nil
}

// adminPolicy: GET /admin/cmk/policies/{sub}/{rg}/{name}.
func (s *Server) adminPolicy(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	v.Done = doneNote(r.URL.Query().Get("done"))
	if err := s.adminPolicyView(r, &v); err != nil {
		msg, status, err := adminRefusal(err)
		if err != nil {
			return err
		}
		v.Title, v.Error = "Enterprise policy", msg
		return renderAdmin(w, status, "refused", v)
	}
	return renderAdmin(w, nethttp.StatusOK, "policy", v)
}

// adminPolicyAction: POST /admin/cmk/policies/{sub}/{rg}/{name} with
// action=add or remove and env=…: starts the link or unlink and shows
// its operation. A refusal shows the API's message on the policy's page
// and starts nothing.
func (s *Server) adminPolicyAction(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	view := v
	if err := s.adminPolicyView(r, &view); err != nil {
		msg, status, err := adminRefusal(err)
		if err != nil {
			return err
		}
		v.Title, v.Error = "Enterprise policy", msg
		return renderAdmin(w, status, "refused", v)
	}
	d := view.Data.(*policyPageData)
	envID := r.PostForm.Get("env")
	var (
		op  *keyhold.Operation
		err error
	)
	switch r.PostForm.Get("action") {
	case "add":
		op, err = s.CMK.LinkPolicy(r.Context(), envID, d.Policy.SystemID)
	case "remove":
		op, err = s.CMK.UnlinkPolicy(r.Context(), envID, d.Policy.SystemID)
	default:
		err = keyhold.Errorf(keyhold.CodeBadRequest, "action %q is not one of this page's: use add or remove", keyhold.Clip(r.PostForm.Get("action")))
	}
	if err != nil {
		msg, status, ferr := adminRefusal(err)
		if ferr != nil {
			return ferr
		}
		view.Error = msg
		return renderAdmin(w, status, "policy", view)
	}
	s.toOperation(w, r, v.sess, op)
	return nil
}

// toOperation sends the browser to the page of an operation a form just
// started, keeping its warnings in the session for that page first: the
// service says them once, in the answer that starts it.
func (s *Server) toOperation(w nethttp.ResponseWriter, r *nethttp.Request, sess *adminSession, op *keyhold.Operation) {
	if len(op.Warnings) > 0 {
		sess.mu.Lock()
		if sess.notes == nil || len(sess.notes) > 32 {
			sess.notes = map[string][]string{}
		}
		sess.notes[op.ID] = op.Warnings
		sess.mu.Unlock()
	}
	nethttp.Redirect(w, r, adminPrefix+"/operations/"+url.PathEscape(op.ID), nethttp.StatusSeeOther)
}

type opPageData struct {
	Op       *keyhold.Operation
	Env      *keyhold.Environment // its target, when it is an environment the caller sees
	Warnings []string
	Finished bool
	Percent  int
}

// adminOperation: GET /admin/operations/{opId}: the operation's state,
// step and progress; the page's script polls its status while it runs.
func (s *Server) adminOperation(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	if s.CMK == nil {
		return renderAdmin(w, nethttp.StatusNotFound, "refused", adminView{Title: "Operation", Error: "this server runs no operations"})
	}
	op, err := s.CMK.GetOperation(r.Context(), r.PathValue("opId"))
	if err != nil {
		msg, status, err := adminRefusal(err)
		if err != nil {
			return err
		}
		v.Title, v.Error = "Operation", msg
		return renderAdmin(w, status, "refused", v)
	}
	d := &opPageData{Op: op, Finished: op.State != keyhold.OperationRunning, Percent: percent(op)}
	if e, err := s.Environments.FindEnvironment(r.Context(), op.Target); err == nil {
		d.Env = e
	}
	v.sess.mu.Lock()
	d.Warnings = v.sess.notes[op.ID]
	v.sess.mu.Unlock()
	v.Title, v.Nav, v.Data = "Operation: "+op.Kind, "cmk", d
	return renderAdmin(w, nethttp.StatusOK, "operation", v)
}

func percent(op *keyhold.Operation) int {
	switch {
	case op.State == keyhold.OperationSucceeded:
		return 100
	case op.Total <= 0:
		return 0
	}
	return int(min(100, op.Done*100/op.Total))
}

// opStatusJSON is what the operation page's script polls.
type opStatusJSON struct {
	State   string `json:"state"`
	Phase   string `json:"phase,omitempty"`
	Step    string `json:"step"`
	Percent int    `json:"percent"`
	Done    bool   `json:"done"`
	// Count and Total are the units done and expected (0: unknown), for
	// the environment page's done of total.
	Count int64 `json:"count"`
	Total int64 `json:"total"`
}

// adminOperationStatus: GET /admin/operations/{opId}/status, for the
// page's polling (the session's cookie, as the page).
func (s *Server) adminOperationStatus(w nethttp.ResponseWriter, r *nethttp.Request, _ adminView) error {
	if s.CMK == nil {
		return keyhold.Errorf(keyhold.CodeNotFound, "this server runs no operations")
	}
	op, err := s.CMK.GetOperation(r.Context(), r.PathValue("opId"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(opStatusJSON{State: string(op.State), Phase: string(op.Phase), Step: op.Step, Percent: percent(op),
		Done: op.State != keyhold.OperationRunning, Count: op.Done, Total: op.Total})
}
