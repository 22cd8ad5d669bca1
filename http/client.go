package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// Client talks to a Keyhold server over HTTPS as one service principal. It
// implements keyhold.EnvironmentService, DataService and AuditService, and
// this package's ResourceManager and Directory (armclient.go), so
// code written against those contracts runs against a remote server
// unchanged. It gets its own tokens from the server's token endpoint and
// caches one per scope until a minute before it expires.
//
// Errors the server answers are *keyhold.Error values with the server's
// code and message; a server that can't be reached is CodeServiceUnavailable.
// A Client is safe for concurrent use.
type Client struct {
	base         string // scheme://host[:port][/prefix], no trailing slash
	hc           *nethttp.Client
	tenantID     string
	clientID     string
	clientSecret string
	user         *userLogin       // a person's sign-in (signinclient.go); nil for a service principal
	now          func() time.Time // tests move it
	vaultDomain  vaultDomain      // host-form vaults dialled at the server (vaultdial.go)

	mu     sync.Mutex
	tokens map[string]*cachedToken // by scope
}

// cachedToken is the token of one scope; its mutex makes concurrent callers
// wait for one refresh rather than each fetch their own.
type cachedToken struct {
	mu      sync.Mutex
	token   *keyhold.Token
	refresh time.Time // when to fetch a new one
}

// tokenRefreshMargin is how long before expiry a cached token is replaced,
// so that a token is never sent in its last moments.
const tokenRefreshMargin = time.Minute

// Compile-time checks that the Client implements the contracts.
var (
	_ keyhold.EnvironmentService = (*Client)(nil)
	_ keyhold.DataService        = (*Client)(nil)
	_ keyhold.AuditService       = (*Client)(nil)
	_ keyhold.EnvironmentEnabler = (*Client)(nil)
	// The groups the cli's command groups take (the root's client.go).
	_ keyhold.APIClient    = (*Client)(nil)
	_ keyhold.ARMClient    = (*Client)(nil)
	_ keyhold.BackupClient = (*Client)(nil)
	_ keyhold.CMKClient    = (*Client)(nil)
	_ keyhold.EventClient  = (*Client)(nil)
)

// NewClient returns a client of the server at baseURL (https only), which
// signs in to tenantID with the client credentials given. If caPEM holds
// certificates, they are the only roots trusted for the server's
// certificate; if it is empty, the system roots are.
func NewClient(baseURL string, caPEM []byte, tenantID, clientID, clientSecret string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("keyhold: server URL %q is not valid: %v", baseURL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("keyhold: server URL %q is not valid: use https://host:port (Keyhold serves HTTPS only, and a client secret must not travel in the clear)", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("keyhold: server URL %q is not valid: give only https://host:port and an optional path prefix", baseURL)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(bytes.TrimSpace(caPEM)) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("keyhold: the CA certificate holds no PEM certificate: give the server's ca.pem")
		}
		cfg.RootCAs = pool
	}
	t := nethttp.DefaultTransport.(*nethttp.Transport).Clone()
	t.TLSClientConfig = cfg
	c := &Client{
		base:         strings.TrimSuffix(u.String(), "/"),
		hc:           &nethttp.Client{Transport: t},
		tenantID:     tenantID,
		clientID:     clientID,
		clientSecret: clientSecret,
		now:          time.Now,
		tokens:       make(map[string]*cachedToken),
	}
	server := u.Host
	if u.Port() == "" {
		server = net.JoinHostPort(u.Hostname(), "443")
	}
	t.DialContext = c.dialVaults(server)
	return c, nil
}

// Token returns an access token for scope (an audience followed by
// "/.default"), from the cache while it has more than a minute to live,
// and otherwise from the server's token endpoint. Wrong credentials are
// CodeInvalidClient; an unknown scope is CodeInvalidScope.
func (c *Client) Token(ctx context.Context, scope string) (*keyhold.Token, error) {
	c.mu.Lock()
	ct := c.tokens[scope]
	if ct == nil {
		ct = new(cachedToken)
		c.tokens[scope] = ct
	}
	c.mu.Unlock()

	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.token != nil && c.now().Before(ct.refresh) {
		tok := *ct.token
		return &tok, nil
	}
	start := c.now()
	tok, err := c.fetchToken(ctx, scope)
	if err != nil {
		return nil, err
	}
	ct.token = tok
	ct.refresh = start.Add(time.Duration(tok.ExpiresIn)*time.Second - tokenRefreshMargin)
	cp := *tok
	return &cp, nil
}

// dropToken forgets the cached token of scope if it is still accessToken,
// which the server has just refused.
func (c *Client) dropToken(scope, accessToken string) {
	c.mu.Lock()
	ct := c.tokens[scope]
	c.mu.Unlock()
	if ct == nil {
		return
	}
	ct.mu.Lock()
	if ct.token != nil && ct.token.AccessToken == accessToken {
		ct.token = nil
	}
	ct.mu.Unlock()
}

// fetchToken asks the token endpoint for a token, as a client-credentials
// grant.
func (c *Client) fetchToken(ctx context.Context, scope string) (*keyhold.Token, error) {
	if c.user != nil {
		return c.refresh(ctx, scope)
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.clientID},
		"client_secret": {c.clientSecret},
		"scope":         {scope},
	}
	tj, err := c.postToken(ctx, form)
	if err != nil {
		return nil, err
	}
	return &keyhold.Token{AccessToken: tj.AccessToken, TokenType: tj.TokenType, ExpiresIn: tj.ExpiresIn, ExtExpires: tj.ExtExpiresIn}, nil
}

// postToken posts form to the tenant's token endpoint and decodes the
// answer; an answer with no access token is an error.
func (c *Client) postToken(ctx context.Context, form url.Values) (*tokenJSON, error) {
	u := c.base + "/" + url.PathEscape(c.tenantID) + "/oauth2/v2.0/token"
	req, err := nethttp.NewRequestWithContext(ctx, "POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("keyhold: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != nethttp.StatusOK {
		return nil, decodeError(resp)
	}
	var tj tokenJSON
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tj); err != nil || tj.AccessToken == "" {
		return nil, badAnswer(resp, "token", err)
	}
	return &tj, nil
}

// powerAppsScope is the scope of the environment, data and audit APIs;
// the resource manager and directory APIs use managementScope
// (armclient.go).
const powerAppsScope = string(keyhold.AudiencePowerApps) + "/.default"

// send is sendAs with the Power Apps scope.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string) (*nethttp.Response, error) {
	return c.sendAs(ctx, powerAppsScope, method, path, body, contentType)
}

// sendAs makes a request authenticated by a token for scope and returns a
// 2xx response, whose body the caller closes. If the server refuses the
// token (401), sendAs fetches a new one and tries once more when the body
// can be sent again: none, or a *bytes.Reader. Any other body is a stream,
// sent once, after the server has accepted the request's headers (Expect:
// 100-continue).
func (c *Client) sendAs(ctx context.Context, scope, method, path string, body io.Reader, contentType string) (*nethttp.Response, error) {
	replayable := body == nil
	var data []byte
	if br, ok := body.(*bytes.Reader); ok {
		data, _ = io.ReadAll(br)
		replayable = true
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.Token(ctx, scope)
		if err != nil {
			return nil, err
		}
		var rb io.Reader
		switch {
		case data != nil:
			rb = bytes.NewReader(data)
		case body != nil:
			rb = struct{ io.Reader }{body} // hide Close: the caller owns body
		}
		req, err := nethttp.NewRequestWithContext(ctx, method, c.base+path, rb)
		if err != nil {
			return nil, fmt.Errorf("keyhold: %s %s: %w", method, path, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Accept", "application/json")
		if rb != nil {
			req.Header.Set("Content-Type", contentType)
		}
		if rb != nil && !replayable {
			// A stream may be large: let the server refuse it (a bad
			// token, an unknown environment) before it is sent.
			req.Header.Set("Expect", "100-continue")
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, c.unreachable(err)
		}
		if resp.StatusCode/100 == 2 {
			return resp, nil
		}
		if resp.StatusCode == nethttp.StatusUnauthorized && attempt == 0 && replayable {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			c.dropToken(scope, tok.AccessToken)
			continue
		}
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
}

// do sends in as JSON (unless nil) and decodes the answer into out (unless
// nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("keyhold: encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeAnswer(resp, out)
}

// decodeAnswer decodes a 2xx JSON answer into out.
func decodeAnswer(resp *nethttp.Response, out any) error {
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return badAnswer(resp, "JSON", err)
	}
	return nil
}

// decodeError turns a non-2xx answer into a *keyhold.Error: the Azure error
// body, Entra ID's OAuth2 error body, or, for anything else (a proxy's
// page), a code derived from the status.
func decodeError(resp *nethttp.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	cause := fmt.Errorf("HTTP %d from %s %s, x-ms-request-id %s", resp.StatusCode, resp.Request.Method, resp.Request.URL.Path, resp.Header.Get("x-ms-request-id"))
	var az errorBody
	if json.Unmarshal(b, &az) == nil && az.Error.Code != "" {
		e := &keyhold.Error{Code: az.Error.Code, Message: az.Error.Message, Err: cause}
		if az.Error.InnerError != nil {
			e.Inner = az.Error.InnerError.Code
		}
		return e
	}
	var oa oauthErrorJSON
	if json.Unmarshal(b, &oa) == nil && oa.Error != "" {
		return &keyhold.Error{Code: oa.Error, Message: oa.ErrorDescription, Err: cause}
	}
	return &keyhold.Error{Code: codeOfStatus(resp.StatusCode), Message: fmt.Sprintf("the server answered %s without an error body", resp.Status), Err: cause}
}

// badAnswer is the error for a 2xx answer the client can't read.
func badAnswer(resp *nethttp.Response, what string, err error) error {
	return &keyhold.Error{
		Code:    keyhold.CodeInternal,
		Message: fmt.Sprintf("the server's answer to %s %s is not the expected %s: is the URL that of a Keyhold server?", resp.Request.Method, resp.Request.URL.Path, what),
		Err:     err,
	}
}

// unreachable is the error for a request that got no answer.
func (c *Client) unreachable(err error) error {
	reason := err
	if ue, ok := errors.AsType[*url.Error](err); ok {
		reason = ue.Err // the URL is named already
	}
	return &keyhold.Error{
		Code:    keyhold.CodeServiceUnavailable,
		Message: fmt.Sprintf("no answer from Keyhold at %s: %v", c.base, reason),
		Err:     err,
	}
}

// escape joins path segments, escaping each.
func escape(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// CreateEnvironment creates e (Location, DisplayName, SKU and Managed are
// sent) and fills in e from the server's answer.
func (c *Client) CreateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	type properties struct {
		DisplayName             string                   `json:"displayName"`
		EnvironmentSku          string                   `json:"environmentSku"`
		GovernanceConfiguration *governanceConfiguration `json:"governanceConfiguration,omitempty"`
		FinanceAndOperations    *financeAndOperations    `json:"financeAndOperations,omitempty"`
	}
	in := struct {
		Location   string     `json:"location"`
		Properties properties `json:"properties"`
	}{e.Location, properties{DisplayName: e.DisplayName, EnvironmentSku: string(e.SKU)}}
	if e.Managed {
		in.Properties.GovernanceConfiguration = &governanceConfiguration{ProtectionLevel: protectionStandard}
	}
	if e.PowerPlatformIntegration && !e.FinOps {
		// The wire can't say it (the object's presence means finance and
		// operations apps): refuse it here, as the server would.
		return e.Validate()
	}
	if e.FinOps {
		in.Properties.FinanceAndOperations = &financeAndOperations{PowerPlatformIntegration: e.PowerPlatformIntegration}
	}
	var out environmentJSON
	if err := c.do(ctx, "POST", bapPrefix+"/environments", in, &out); err != nil {
		return err
	}
	*e = *fromEnvironmentJSON(&out)
	return nil
}

// FindEnvironment returns the environment id; CodeEnvironmentNotFound if
// the caller's tenant has none such.
func (c *Client) FindEnvironment(ctx context.Context, id string) (*keyhold.Environment, error) {
	var out environmentJSON
	if err := c.do(ctx, "GET", adminEnvPrefix+escape(id), nil, &out); err != nil {
		return nil, err
	}
	return fromEnvironmentJSON(&out), nil
}

// ListEnvironments returns the environments of the caller's tenant.
func (c *Client) ListEnvironments(ctx context.Context) ([]*keyhold.Environment, error) {
	var out listJSON[environmentJSON]
	if err := c.do(ctx, "GET", adminEnvPrefix, nil, &out); err != nil {
		return nil, err
	}
	envs := make([]*keyhold.Environment, len(out.Value))
	for i := range out.Value {
		envs[i] = fromEnvironmentJSON(&out.Value[i])
	}
	return envs, nil
}

// UpdateEnvironment changes the fields of upd that are set, and returns the
// environment as it then is.
func (c *Client) UpdateEnvironment(ctx context.Context, id string, upd keyhold.EnvironmentUpdate) (*keyhold.Environment, error) {
	type finOps struct {
		PowerPlatformIntegration *bool `json:"powerPlatformIntegration"`
	}
	type properties struct {
		DisplayName             *string                  `json:"displayName,omitempty"`
		GovernanceConfiguration *governanceConfiguration `json:"governanceConfiguration,omitempty"`
		FinanceAndOperations    *finOps                  `json:"financeAndOperations,omitempty"`
		CreateFlowsInSolutions  *bool                    `json:"createFlowsInSolutions,omitempty"`
	}
	in := struct {
		Properties properties `json:"properties"`
	}{properties{DisplayName: upd.DisplayName, CreateFlowsInSolutions: upd.CreateFlowsInSolutions}}
	if upd.PowerPlatformIntegration != nil {
		in.Properties.FinanceAndOperations = &finOps{PowerPlatformIntegration: upd.PowerPlatformIntegration}
	}
	if upd.Managed != nil {
		in.Properties.GovernanceConfiguration = &governanceConfiguration{ProtectionLevel: protectionLevel(*upd.Managed)}
	}
	var out environmentJSON
	if err := c.do(ctx, "PATCH", adminEnvPrefix+escape(id), in, &out); err != nil {
		return nil, err
	}
	return fromEnvironmentJSON(&out), nil
}

// DeleteEnvironment deletes the environment id, its keys and its data.
func (c *Client) DeleteEnvironment(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", adminEnvPrefix+escape(id), nil, nil)
}

// PutRow stores data, a JSON object of at most keyhold.MaxRowBytes, as the
// row id of table.
func (c *Client) PutRow(ctx context.Context, envID, table, id string, data json.RawMessage) (*keyhold.Row, error) {
	resp, err := c.send(ctx, "PUT", escape("environments", envID, "tables", table, "rows", id), bytes.NewReader(data), "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var row keyhold.Row
	if err := decodeAnswer(resp, &row); err != nil {
		return nil, err
	}
	return &row, nil
}

// GetRow returns a row; CodeRowNotFound if there is none.
func (c *Client) GetRow(ctx context.Context, envID, table, id string) (*keyhold.Row, error) {
	var row keyhold.Row
	if err := c.do(ctx, "GET", escape("environments", envID, "tables", table, "rows", id), nil, &row); err != nil {
		return nil, err
	}
	return &row, nil
}

// ListRows returns a page of a table's rows ($top, $filter, $skiptoken).
func (c *Client) ListRows(ctx context.Context, envID, table string, q keyhold.RowQuery) (*keyhold.RowPage, error) {
	v := url.Values{}
	if q.Top != 0 {
		v.Set("$top", strconv.Itoa(q.Top))
	}
	if q.Filter != "" {
		v.Set("$filter", q.Filter)
	}
	if q.SkipToken != "" {
		v.Set("$skiptoken", q.SkipToken)
	}
	path := escape("environments", envID, "tables", table, "rows")
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var page keyhold.RowPage
	if err := c.do(ctx, "GET", path, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// DeleteRow deletes a row.
func (c *Client) DeleteRow(ctx context.Context, envID, table, id string) error {
	return c.do(ctx, "DELETE", escape("environments", envID, "tables", table, "rows", id), nil, nil)
}

// PutFile streams r to the server as the file's new content, without
// holding it in memory. The file is replaced only once all of r is stored.
// r is read to its end but not closed.
func (c *Client) PutFile(ctx context.Context, envID, name string, r io.Reader) (*keyhold.FileInfo, error) {
	resp, err := c.send(ctx, "PUT", escape("environments", envID, "files", name), r, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var info keyhold.FileInfo
	if err := decodeAnswer(resp, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// OpenFile returns the file's description and a reader of its content as
// it streams from the server; the caller closes it. If the server fails
// mid-stream (e.g. the stored data was tampered with), Read returns an
// error (io.ErrUnexpectedEOF) rather than a silently short file.
func (c *Client) OpenFile(ctx context.Context, envID, name string) (*keyhold.FileInfo, io.ReadCloser, error) {
	resp, err := c.send(ctx, "GET", escape("environments", envID, "files", name), nil, "")
	if err != nil {
		return nil, nil, err
	}
	info := &keyhold.FileInfo{EnvID: envID, Name: name, Size: resp.ContentLength}
	if v, err := strconv.ParseUint(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64); err == nil {
		info.Version = v
	}
	if t, err := nethttp.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.UpdatedAt = t
	}
	return info, resp.Body, nil
}

// ListAudit returns one page of the caller's tenant's audit entries, newest
// first: at most f.Limit (0: the server's default), optionally of one
// environment and before an entry id. f.TenantID is ignored: the server
// uses the caller's tenant.
func (c *Client) ListAudit(ctx context.Context, f keyhold.AuditFilter) ([]*keyhold.AuditEntry, error) {
	q := url.Values{}
	if f.EnvID != "" {
		q.Set("environmentId", f.EnvID)
	}
	if f.Limit > 0 {
		q.Set("top", strconv.Itoa(f.Limit))
	}
	if f.BeforeID > 0 {
		q.Set("before", strconv.FormatInt(f.BeforeID, 10))
	}
	path := bapPrefix + "/scopes/admin/auditlogs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out listJSON[*keyhold.AuditEntry]
	if err := c.do(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}
