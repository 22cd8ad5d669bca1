package http

import (
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// The admin center's "what my key protects" (issue 17): an environment's
// encryption coverage report (the CoverageService that GET
// …/environments/{envId}/encryptionCoverage serves) as a table, and the
// flows that stay on the platform key with their category and fix (the
// FlowCMKService behind …/platformKeyFlows). The environment's page warns
// when there are such flows and links here.

// envFlows is the flows warning of an environment's page.
type envFlows struct {
	On    bool // the server runs flows that can say so
	Flows []*keyhold.PlatformFlow
	Error string // the service's refusal
}

// adminEnvFlows fills d's flows warning.
func (s *Server) adminEnvFlows(r *nethttp.Request, d *envPageData) error {
	cmk, ok := s.Flows.(keyhold.FlowCMKService)
	if !ok {
		return nil
	}
	d.Flows.On = true
	fs, err := cmk.PlatformFlows(r.Context(), d.Env.ID)
	if err != nil {
		msg, _, err := adminRefusal(err)
		d.Flows.Error = msg
		return err
	}
	d.Flows.Flows = fs
	return nil
}

// coverageRow is one line of the coverage table: a store and one of the
// roots that hold its items (or the store alone, when it holds none).
type coverageRow struct {
	Store  string
	Items  int64 // the store's, on its first line
	First  bool
	Span   int // the lines of the store, on its first line
	Root   *keyhold.CoverageRoot
	Reader string // what the root is, for people
}

type coveragePageData struct {
	Env      *keyhold.Environment
	Coverage *keyhold.EncryptionCoverage
	Rows     []coverageRow
	Error    string // the coverage service's refusal
	Flows    envFlows
}

// rootText says what a coverage root is.
func rootText(r *keyhold.CoverageRoot) string {
	switch r.Root {
	case keyhold.CoverageRootPlatform:
		return "Microsoft-managed key"
	case keyhold.CoverageRootCustomer:
		return "Customer-managed key"
	case keyhold.CoverageRootBYOK:
		return "Tenant's BYOK key"
	}
	return "None"
}

// adminCoverage: GET /admin/environments/{envId}/coverage.
func (s *Server) adminCoverage(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	id := r.PathValue("envId")
	e, err := s.Environments.FindEnvironment(r.Context(), id)
	if err != nil {
		msg, status, err := adminRefusal(err)
		if err != nil {
			return err
		}
		v.Title, v.Error, v.Data = "What my key protects", msg, adminPrefix+"/environments"
		return renderAdmin(w, status, "access-refused", v)
	}
	d := &coveragePageData{Env: e}
	v.Title, v.Nav, v.Data = "What my key protects: "+e.DisplayName, "environments", d
	status := nethttp.StatusOK
	if s.Coverage == nil {
		d.Error = "This server makes no encryption coverage report."
	} else if c, err := s.Coverage.EncryptionCoverage(r.Context(), e.ID); err != nil {
		msg, st, err := adminRefusal(err)
		if err != nil {
			return err
		}
		d.Error, status = msg, st
	} else {
		d.Coverage = c
		for _, st := range c.Stores {
			if len(st.Roots) == 0 {
				d.Rows = append(d.Rows, coverageRow{Store: st.Store, Items: st.Items, First: true, Span: 1})
				continue
			}
			for i := range st.Roots {
				root := &st.Roots[i]
				d.Rows = append(d.Rows, coverageRow{Store: st.Store, Items: st.Items, First: i == 0, Span: len(st.Roots), Root: root, Reader: rootText(root)})
			}
		}
	}
	var pd envPageData
	pd.Env = e
	if err := s.adminEnvFlows(r, &pd); err != nil {
		return err
	}
	d.Flows = pd.Flows
	return renderAdmin(w, status, "coverage", v)
}
