package http

import (
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
)

// The admin center's environment pages: the list with its filters, and
// one environment's details, encryption, lock banner and Managed
// Environment toggle. Each reads and changes environments through the
// services the BAP admin API serves.

// envFilter is the list's filters, from the query.
type envFilter struct {
	Q, State, Managed, KeyManagedBy string
}

func (f envFilter) match(e *keyhold.Environment) bool {
	if q := strings.ToLower(strings.TrimSpace(f.Q)); q != "" &&
		!strings.Contains(strings.ToLower(e.DisplayName), q) && !strings.Contains(strings.ToLower(e.ID), q) {
		return false
	}
	if f.State != "" && string(e.State) != f.State {
		return false
	}
	if f.Managed != "" && (f.Managed == "yes") != e.Managed {
		return false
	}
	return f.KeyManagedBy == "" || string(e.KeyManagedBy) == f.KeyManagedBy
}

// option lists of the filters: what the page offers to choose.
var (
	envStates       = []string{string(keyhold.StateEnabled), string(keyhold.StateDisabled), string(keyhold.StateAdminMode), string(keyhold.StateLocked)}
	envKeyManagedBy = []string{string(keyhold.KeyManagedByMicrosoft), string(keyhold.KeyManagedByCustomer), string(keyhold.KeyManagedByCustomerViaMicrosoft)}
)

type envListData struct {
	Filter       envFilter
	States       []string
	KeyManagedBy []string
	Envs         []*keyhold.Environment
	Total        int
}

// adminEnvironments: GET /admin/environments?q=…&state=…&managed=…&keyManagedBy=….
func (s *Server) adminEnvironments(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	q := r.URL.Query()
	f := envFilter{Q: keyhold.Clip(q.Get("q")), State: q.Get("state"), Managed: q.Get("managed"), KeyManagedBy: q.Get("keyManagedBy")}
	v.Title, v.Nav = "Environments", "environments"
	d := envListData{Filter: f, States: envStates, KeyManagedBy: envKeyManagedBy}
	v.Data = &d
	envs, err := s.Environments.ListEnvironments(r.Context())
	if err != nil {
		msg, status, err := adminRefusal(err)
		if err != nil {
			return err
		}
		v.Error = msg
		return renderAdmin(w, status, "environments", v)
	}
	d.Total = len(envs)
	for _, e := range envs {
		if f.match(e) {
			d.Envs = append(d.Envs, e)
		}
	}
	slices.SortFunc(d.Envs, func(a, b *keyhold.Environment) int {
		return strings.Compare(strings.ToLower(a.DisplayName), strings.ToLower(b.DisplayName))
	})
	return renderAdmin(w, nethttp.StatusOK, "environments", v)
}

type envPageData struct {
	Env    *keyhold.Environment
	Policy *keyhold.EnterprisePolicy // the linked policy, if any
	LastOp *keyhold.Operation
	// CanEnable: the CMK service can re-enable a Locked environment.
	CanEnable bool
	// The sections issue 17's second part added (admin_backup.go,
	// admin_progress.go, admin_coverage.go).
	Backups envBackups
	Ops     []*envOp
	Flows   envFlows
}

// adminEnvironmentView fills v with the environment's page.
func (s *Server) adminEnvironmentView(r *nethttp.Request, v *adminView) (int, error) {
	id := r.PathValue("envId")
	e, err := s.Environments.FindEnvironment(r.Context(), id)
	if err != nil {
		return 0, err
	}
	d := &envPageData{Env: e}
	_, d.CanEnable = s.CMK.(keyhold.EnvironmentEnabler)
	if s.CMK != nil && e.PolicyID != "" {
		// The policy's details come with the tenant's links; a caller
		// who may not read them still sees the environment.
		if links, err := s.CMK.PolicyLinks(r.Context()); err == nil {
			for _, l := range links {
				if l.Environment != nil && l.Environment.ID == e.ID {
					d.Policy, d.LastOp = l.Policy, l.LastOperation
				}
			}
		}
	}
	if err := s.adminEnvSections(r, d); err != nil {
		return 0, err
	}
	v.Title, v.Nav, v.Data = e.DisplayName, "environments", d
	return nethttp.StatusOK, nil
}

// adminEnvironment: GET /admin/environments/{envId}.
func (s *Server) adminEnvironment(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	v.Done = doneNote(r.URL.Query().Get("done"))
	status, err := s.adminEnvironmentView(r, &v)
	if err != nil {
		msg, st, err := adminRefusal(err)
		if err != nil {
			return err
		}
		v.Title, v.Error = "Environment", msg
		return renderAdmin(w, st, "refused", v)
	}
	return renderAdmin(w, status, "environment", v)
}

// doneNotes are the messages a page shows after a change: fixed texts,
// so that a link can't make the page say something else.
var doneNotes = map[string]string{
	"managed-on":      "Managed Environment is on.",
	"managed-off":     "Managed Environment is off.",
	"enabled":         "The environment is enabled again: its data is served under the customer-managed key.",
	"vault-created":   "The key vault is created, with soft delete and purge protection.",
	"key-created":     "The key is created.",
	"key-rotated":     "The key has a new version.",
	"granted":         "The role is assigned.",
	"revoked":         "The role assignment is removed.",
	"backup-created":  "The backup is taken.",
	"webhook-set":     "The webhook is saved: every new event is posted to it.",
	"webhook-removed": "The webhook is removed: events are listed here only.",
	"rotation-set":    "The key's rotation policy is saved.",
	"policy-added":    "The access policy is saved.",
	"policy-removed":  "The access policy is removed.",
	"network-set":     "The network rules are saved.",
	"webhook-tested":  "A test event is written: its webhook delivery shows below, and moves on when you reload the page.",
	"deployed":        "The policy is deployed. Grant its identity Key Vault Crypto Service Encryption User on the key vault, then Reader on the policy to the platform administrators.",
}

func doneNote(k string) string { return doneNotes[k] }

// adminEnvironmentAction: POST /admin/environments/{envId} with
// action=managed (managed=on|off) or action=enable. A refusal shows the
// API's message on the environment's page and changes nothing.
func (s *Server) adminEnvironmentAction(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	id := r.PathValue("envId")
	var (
		done string
		err  error
	)
	switch r.PostForm.Get("action") {
	case "managed":
		on := r.PostForm.Get("managed") == "on"
		_, err = s.Environments.UpdateEnvironment(r.Context(), id, keyhold.EnvironmentUpdate{Managed: &on})
		done = "managed-off"
		if on {
			done = "managed-on"
		}
	case "enable":
		en, ok := s.CMK.(keyhold.EnvironmentEnabler)
		if !ok {
			err = keyhold.Errorf(keyhold.CodeNotSupported, "this server can't re-enable environments")
			break
		}
		_, err = en.EnableEnvironmentOp(r.Context(), id)
		done = "enabled"
	default:
		err = keyhold.Errorf(keyhold.CodeBadRequest, "action %q is not one of this page's: use managed or enable", keyhold.Clip(r.PostForm.Get("action")))
	}
	if err != nil {
		msg, status, ferr := adminRefusal(err)
		if ferr != nil {
			return ferr
		}
		if _, verr := s.adminEnvironmentView(r, &v); verr != nil {
			v.Title = "Environment"
			v.Error = msg
			return renderAdmin(w, status, "refused", v)
		}
		v.Error = msg
		return renderAdmin(w, status, "environment", v)
	}
	nethttp.Redirect(w, r, adminPrefix+"/environments/"+url.PathEscape(id)+"?done="+done, nethttp.StatusSeeOther)
	return nil
}
