// Package http serves Keyhold's HTTPS API and holds a Go client for it.
//
// The API copies the shapes of the real services (the Entra ID token
// endpoint, the Power Platform BAP admin API, the Azure error body), so the
// official Azure SDKs and scripts written against Azure work with it. The
// Server adapts the root package's service contracts to HTTP; the Client
// implements the same contracts over HTTPS, so the CLI talks to a server
// through the domain contract.
//
// # Routes
//
// Routes are declared as data, in one table (Server.routes): method, pattern, the
// token audiences accepted, the body kind and limit, and the timeout. One
// wrapper per route establishes the caller's identity before the handler
// runs, and handlers return errors that one function writes, with one table
// from error code to HTTP status ([StatusOf]).
//
// # Errors
//
// API errors use the Azure error body:
//
//	{"error":{"code":"EnvironmentNotFound","message":"…"}}
//
// with "innererror":{"code":…} when the error has an inner code. The token
// endpoint answers errors in Entra ID's OAuth2 shape instead:
//
//	{"error":"invalid_client","error_description":"…","error_codes":[…],…}
//
// The cause of an error stays on the server: it is logged with the request
// id, which every answer carries in x-ms-request-id.
package http

import (
	"context"
	"errors"
	"log/slog"
	nethttp "net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves Keyhold's HTTPS API over the services it holds. Fill in its
// fields, then call Handler once and serve it with a net/http.Server that
// terminates TLS. The fields must not change after Handler is first called.
type Server struct {
	Tokens       keyhold.TokenService
	Environments keyhold.EnvironmentService
	Data         keyhold.DataService
	Audit        keyhold.AuditService

	// Logger receives one line per request and the causes of server
	// errors. Nil discards them.
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics. Nil:
	// no metrics are registered and /metrics answers 404.
	Registry *prometheus.Registry
	// Health reports whether the server can serve (e.g. its database
	// answers); /healthz calls it. Nil: always healthy.
	Health func(context.Context) error
	// PublicURL is the externally visible base URL, e.g.
	// "https://keyhold.example.com:8443", used in bearer challenges and
	// nextLink values. Empty: derived from each request's Host.
	PublicURL string
	// VaultDomain is the domain vaults are addressed under by host,
	// {vault}.{VaultDomain} (vaulthost.go); "" is
	// keyhold.DefaultVaultDomain.
	VaultDomain string

	// Slow clients (deadline.go). BodyTimeout bounds the time to receive
	// the body of a route with a timeout; a streamed upload or download
	// must keep StreamMinRate bytes per second on average, after
	// StreamGrace. Zero: DefaultBodyTimeout, DefaultStreamMinRate,
	// DefaultStreamGrace.
	BodyTimeout   time.Duration
	StreamMinRate int64
	StreamGrace   time.Duration

	// SignInLimits throttles wrong credentials at the token endpoint
	// (ratelimit.go); zero fields take the defaults. Clock, if set,
	// replaces the wall clock for its lockouts (tests).
	SignInLimits SignInLimits
	Clock        keyhold.Clock

	// Events lists events and keeps tenant settings (events.go); nil: no
	// such routes.
	Events keyhold.EventService
	// Keys serves the public keys that verify tokens and webhook
	// signatures (events.go); nil: no key set route.
	Keys keyhold.SigningKeySource

	// ARM holds the resource manager and identity services (arm.go).
	ARM ARMAPI
	// KeyVault holds the key vault services (keyvault.go).
	KeyVault KeyVaultAPI
	// ManagedHSM holds the Managed HSM service (managedhsm.go).
	ManagedHSM ManagedHSMAPI
	// CMK runs the customer-managed key lifecycle: link, unlink,
	// operations, environments with policies, key version usage
	// (cmk.go). Nil: none of its routes is served.
	CMK keyhold.CMKService
	// Policies holds the enterprise policy provider and template
	// deployments (policy.go).
	Policies PolicyAPI
	// Backups takes, lists and deletes backups, and runs restore, copy
	// and reset (backup.go); their operations are read at the CMK's
	// operations route. Nil: none of its routes is served.
	Backups keyhold.BackupService
	// BYOK keeps the tenant's legacy BYOK keys (byok.go). Nil: none of
	// its routes is served.
	BYOK keyhold.BYOKService
	// Flows serves Power Automate's flows, runs and connections
	// (flows.go). Nil: none of its routes is served.
	Flows keyhold.FlowService
	// PreMigration reads the run history kept from before a link
	// (flows_premigration.go). Nil: no such route.
	PreMigration keyhold.PreMigrationService

	// Coverage reports an environment's encryption coverage
	// (coverage.go). Nil: no such route.
	Coverage keyhold.CoverageService

	// Egress keeps tenants' Http allowlists for their flows
	// (tenant_egress.go). Nil: no such routes.
	Egress keyhold.TenantEgressService

	once        sync.Once
	adminOnce   sync.Once
	admin       *adminSessions // the admin center's sessions (admin.go)
	throttle    *throttle
	handler     nethttp.Handler
	log         *slog.Logger
	metrics     *metrics
	promHandler nethttp.Handler
}

// Handler returns the API's handler. It is built on the first call and the
// same handler is returned afterwards. It is safe for concurrent use.
func (s *Server) Handler() nethttp.Handler {
	s.once.Do(func() {
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.metrics = newMetrics(s.Registry)
		s.throttle = newThrottle(s.SignInLimits, s.Clock)
		if s.Registry != nil {
			s.promHandler = promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})
		}
		mux, tenantMux := nethttp.NewServeMux(), nethttp.NewServeMux()
		for _, rt := range s.routes() {
			m := mux
			if rt.Identity || rt.Method == "GET" && strings.HasPrefix(rt.Pattern, tenantPrefix) {
				m = tenantMux // see router
			}
			m.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
		}
		s.handler = &router{s: s, mux: mux, tenant: tenantMux}
	})
	return s.handler
}

// bodyKind says what a route accepts as a request body.
type bodyKind int

const (
	bodyNone    bodyKind = iota // none is read; form bodies are still refused
	bodyJSON                    // a JSON document, read whole up to MaxBody
	bodyForm                    // an OAuth2 form (the token endpoint only)
	bodyStream                  // raw bytes, streamed to the service
	bodyIgnored                 // not looked at (no route matched)
)

// route is one API endpoint, declared as data.
type route struct {
	Method  string
	Pattern string // a net/http.ServeMux pattern, without the method
	// Auth lists the token audiences the route accepts. Nil: the route is
	// public and no token is read.
	Auth    []keyhold.Audience
	Body    bodyKind
	MaxBody int64 // the largest body accepted, in bytes
	// Timeout bounds the handler's context and, with a little slack, the
	// connection's deadlines (deadline.go). Zero: no timeout, and the
	// transfer must instead keep a minimum rate (streaming routes).
	Timeout time.Duration
	// OAuthErrors: errors are answered in Entra ID's OAuth2 shape rather
	// than Azure's (the token endpoint).
	OAuthErrors bool
	// Identity: the route is one of the tenant's identity endpoints
	// (/{tenantId}/…, oidc.go), served from the router's second mux, as
	// every GET under /{tenantId}/ is: their patterns would otherwise
	// conflict with the resource manager's /subscriptions/{path...}.
	Identity bool
	// Challenge, on a route with Auth, runs before the token is read. It
	// may refuse the request; otherwise it returns the request (with what
	// the handler needs in its context) and the WWW-Authenticate value
	// that answers a missing or refused token (Key Vault's bearer
	// challenge, see vaultChallenge). Nil: the default challenge.
	Challenge func(r *nethttp.Request) (*nethttp.Request, string, error)
	Handler   func(w nethttp.ResponseWriter, r *nethttp.Request) error
}

// Paths of the Power Platform BAP admin API.
const (
	bapPrefix      = "/providers/Microsoft.BusinessAppPlatform"
	adminEnvPrefix = bapPrefix + "/scopes/admin/environments"
)

// Limits and timeouts of the routes.
const (
	// MaxFileBytes is the largest file accepted by PUT …/files/{name}.
	MaxFileBytes = 64 << 30
	maxFormBytes = 64 << 10
	maxEnvBytes  = 64 << 10
	apiTimeout   = 30 * time.Second
)

// routes declares the API. The token endpoint, the sign-in endpoints
// (signin.go), /healthz and /metrics are public; every other route needs a
// bearer token of an accepted audience.
func (s *Server) routes() []route {
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	powerApps := []keyhold.Audience{keyhold.AudiencePowerApps}
	const (
		envPath  = adminEnvPrefix + "/{envId}"
		rowPath  = "/environments/{envId}/tables/{table}/rows/{rowId}"
		filePath = "/environments/{envId}/files/{name}"
	)
	core := []route{
		{Method: "POST", Pattern: "/{tenantId}/oauth2/v2.0/token", Body: bodyForm, MaxBody: maxFormBytes, Timeout: apiTimeout, OAuthErrors: true, Handler: s.issueToken},

		{Method: "POST", Pattern: bapPrefix + "/environments", Auth: admin, Body: bodyJSON, MaxBody: maxEnvBytes, Timeout: apiTimeout, Handler: s.createEnvironment},
		{Method: "GET", Pattern: adminEnvPrefix, Auth: admin, Timeout: apiTimeout, Handler: s.listEnvironments},
		{Method: "GET", Pattern: envPath, Auth: admin, Timeout: apiTimeout, Handler: s.getEnvironment},
		{Method: "PATCH", Pattern: envPath, Auth: admin, Body: bodyJSON, MaxBody: maxEnvBytes, Timeout: apiTimeout, Handler: s.patchEnvironment},
		{Method: "DELETE", Pattern: envPath, Auth: admin, Timeout: apiTimeout, Handler: s.deleteEnvironment},

		{Method: "PUT", Pattern: rowPath, Auth: powerApps, Body: bodyJSON, MaxBody: keyhold.MaxRowBytes, Timeout: apiTimeout, Handler: s.putRow},
		{Method: "GET", Pattern: rowPath, Auth: powerApps, Timeout: apiTimeout, Handler: s.getRow},
		{Method: "DELETE", Pattern: rowPath, Auth: powerApps, Timeout: apiTimeout, Handler: s.deleteRow},
		{Method: "GET", Pattern: "/environments/{envId}/tables/{table}/rows", Auth: powerApps, Timeout: apiTimeout, Handler: s.listRows},
		{Method: "PUT", Pattern: filePath, Auth: powerApps, Body: bodyStream, MaxBody: MaxFileBytes, Handler: s.putFile},
		{Method: "GET", Pattern: filePath, Auth: powerApps, Handler: s.getFile},

		{Method: "GET", Pattern: bapPrefix + "/scopes/admin/auditlogs", Auth: admin, Timeout: apiTimeout, Handler: s.listAudit},

		{Method: "GET", Pattern: "/healthz", Timeout: 10 * time.Second, Handler: s.healthz},
		{Method: "GET", Pattern: "/metrics", Timeout: 10 * time.Second, Handler: s.serveMetrics},
	}
	// The resource manager and key vault areas declare their routes in
	// their own files (arm.go, directory.go, keyvault.go); each adds nothing while its
	// services are unset.
	return slices.Concat(core, s.armRoutes(), s.directoryRoutes(), s.keyVaultRoutes(), s.managedHSMRoutes(), s.cmkRoutes(), s.lockRoutes(), s.policyRoutes(), s.eventRoutes(), s.backupRoutes(), s.oidcRoutes(), s.certificateRoutes(), s.federatedRoutes(), s.signInRoutes(), s.byokRoutes(), s.byokKEKRoutes(), s.flowRoutes(), s.flowCMKRoutes(), s.flowSaveAsRoutes(), s.flowReportRoutes(), s.coverageRoutes(), s.tenantEgressRoutes(), s.adminRoutes())
}

// router answers requests that match no route with the Azure error body:
// net/http.ServeMux would answer them in plain text.
//
// The GET routes under /{tenantId}/ (the sign-in pages) are in a mux of
// their own, tried second: in one mux they would conflict with the
// resource manager's GET /subscriptions/{path...}, as both match
// /subscriptions/oauth2/…, and net/http.ServeMux refuses such a pair.
type router struct {
	s      *Server
	mux    *nethttp.ServeMux
	tenant *nethttp.ServeMux
}

// tenantPrefix starts the paths of the identity endpoints.
const tenantPrefix = "/{tenantId}/"

// match returns the mux with a route for r, or nil.
func (rt *router) match(r *nethttp.Request) *nethttp.ServeMux {
	for _, m := range []*nethttp.ServeMux{rt.mux, rt.tenant} {
		if _, pattern := m.Handler(r); pattern != "" {
			return m
		}
	}
	return nil
}

// probeMethods are tried to tell a 405 from a 404.
var probeMethods = []string{"GET", "PUT", "POST", "PATCH", "DELETE"}

func (rt *router) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	r = rt.s.routeByHost(r) // {vault}.{domain}/keys/… is /vaults/{vault}/keys/… (vaulthost.go)
	r = canonicalizeARM(r)  // ARM paths are case-insensitive (armpath.go)
	if m := rt.match(r); m != nil {
		m.ServeHTTP(w, r)
		return
	}
	// No route: find the methods the path has, if any.
	var allow []string
	for _, m := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if rt.match(probe) != nil {
			allow = append(allow, m)
			if m == "GET" {
				allow = append(allow, "HEAD")
			}
		}
	}
	unmatched := route{Pattern: "unmatched", Body: bodyIgnored, Timeout: apiTimeout, Handler: func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		path := r.URL.EscapedPath()
		if len(path) > 200 {
			path = path[:200] + "…"
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return keyhold.Errorf(keyhold.CodeMethodNotAllowed, "%s is not supported at %s: use %s", r.Method, path, strings.Join(allow, ", "))
		}
		return keyhold.Errorf(keyhold.CodeNotFound, "no API at %s %s: see docs/api.md", r.Method, path)
	}}
	rt.s.wrap(unmatched).ServeHTTP(w, r)
}

// identity returns the caller established by the route's wrapper.
func identity(r *nethttp.Request) *keyhold.Identity {
	return keyhold.IdentityFrom(r.Context())
}

// errNoIdentity guards handlers against a route declared without Auth.
var errNoIdentity = errors.New("http: authenticated handler reached without an identity")
