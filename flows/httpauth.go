package flows

import (
	"context"
	"net/http"

	"github.com/keyhold/keyhold"
)

// The parameters of a non-OAuth connection that the Http action uses:
// basic credentials (username and password) or an API key sent in a
// header (headerName, default DefaultAPIKeyHeader).
const (
	ParamUsername   = "username"
	ParamPassword   = "password"
	ParamAPIKey     = "apiKey"
	ParamHeaderName = "headerName"
	// DefaultAPIKeyHeader carries an API key whose connection names no
	// headerName.
	DefaultAPIKeyHeader = "X-API-Key"
)

// validNonOAuth checks a non-OAuth connection's parameters when it is
// saved, so that a connection the Http action can't use is refused then,
// not at its first run. Messages name the parameters, never their values.
func validNonOAuth(p map[string]string) error {
	basic := p[ParamUsername] != "" || p[ParamPassword] != ""
	key := p[ParamAPIKey] != ""
	switch {
	case basic && key:
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.parameterValues holds both basic credentials and an API key: give %s and %s, or %s (and %s), not both", ParamUsername, ParamPassword, ParamAPIKey, ParamHeaderName)
	case basic && (p[ParamUsername] == "" || p[ParamPassword] == ""):
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.parameterValues needs both %s and %s for basic credentials", ParamUsername, ParamPassword)
	case !basic && !key:
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.parameterValues of a nonoauth connection needs %s and %s (basic credentials) or %s (an API key, sent in the header %s, default %s)", ParamUsername, ParamPassword, ParamAPIKey, ParamHeaderName, DefaultAPIKeyHeader)
	}
	if h, ok := p[ParamHeaderName]; ok && !validHeaderName(h) {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.parameterValues.%s %q is not an HTTP header name: use letters, digits and -", ParamHeaderName, keyhold.Clip(h))
	}
	return nil
}

func validHeaderName(h string) bool {
	if h == "" || len(h) > 100 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// authenticate adds a non-OAuth connection's credential to an Http
// action's request: inputs.authentication is {"type": "Connection",
// "connectionName": "<reference>"} (wdl.Parse checked its shape), naming
// one of the flow's connection references. The credential is opened from
// the platform key's partition only here, and goes only into the request:
// the run records the action's inputs as written, which hold the
// reference, never the secret.
//
// It returns the header that carries the credential: the caller must not
// let it follow a redirect to another host (Go drops Authorization there
// by itself, but not an API key's own header).
func (h *host) authenticate(ctx context.Context, req *http.Request, a map[string]any) (string, error) {
	refName, _ := a["connectionName"].(string)
	ref, ok := h.fd.refs[refName]
	if !ok {
		return "", actionErr("ConnectionReferenceNotFound", 400, false, "inputs.authentication names connection reference %q, which the flow's connectionReferences do not hold", keyhold.Clip(refName))
	}
	rec, err := h.s.connRecord(ctx, h.fd.rec.EnvID, ref.API, ref.ConnectionName)
	if keyhold.ErrorCode(err) == keyhold.CodeConnectionNotFound {
		return "", actionErr("ConnectionNotFound", 404, false, "connection %q of api %s was not found in environment %s: create it (keyhold connection create … --kind nonoauth)", ref.ConnectionName, ref.API, h.fd.rec.EnvID)
	} else if err != nil {
		return "", err
	}
	if rec.Kind != keyhold.ConnectionNonOAuth {
		return "", actionErr("ConnectionKindNotSupported", 400, false, "connection %q is %s: the Http action's authentication needs a nonoauth connection (an API key or basic credentials)", rec.Name, rec.Kind)
	}
	sc, err := h.s.openConn(ctx, rec)
	if err != nil {
		return "", err
	}
	p := sc.Parameters
	switch {
	case p[ParamUsername] != "" && p[ParamPassword] != "":
		req.SetBasicAuth(p[ParamUsername], p[ParamPassword])
		return "Authorization", nil
	case p[ParamAPIKey] != "":
		name := p[ParamHeaderName]
		if name == "" {
			name = DefaultAPIKeyHeader
		}
		req.Header.Set(name, p[ParamAPIKey])
		return name, nil
	default:
		return "", actionErr("ConnectionNotUsable", 400, false, "connection %q holds neither %s and %s nor %s: save it again with them", rec.Name, ParamUsername, ParamPassword, ParamAPIKey)
	}
}

// keepOnHost returns client changed to drop header from a redirected
// request to another host (host and port) than the first request's, so a
// credential never follows a redirect off the host the flow named.
func keepOnHost(client *http.Client, header string) *http.Client {
	c := *client
	check := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if check != nil {
			if err := check(req, via); err != nil {
				return err
			}
		}
		if req.URL.Host != via[0].URL.Host {
			req.Header.Del(header)
		}
		return nil
	}
	return &c
}
