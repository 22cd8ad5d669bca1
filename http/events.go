package http

// Events and tenant settings of customer-managed keys, and the key set
// that verifies tokens and webhook signatures:
//
//	GET  /providers/Microsoft.BusinessAppPlatform/scopes/admin/events?top=N&before=ID   200
//	POST /providers/Microsoft.BusinessAppPlatform/listTenantSettings                    200
//	POST /providers/Microsoft.BusinessAppPlatform/updateTenantSettings                  200
//	POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/events/test              201, a WebhookTest event
//	GET  /common/discovery/v2.0/keys                                                200, public
//
// The settings routes copy BAP's listTenantSettings/updateTenantSettings
// (a POST that reads, a POST that changes); Keyhold's settings sit under
// "customerManagedKeys". An update names only what it changes; an unknown
// field is refused, so that a misspelt setting is not silently ignored.

import (
	"bytes"
	"encoding/json"
	nethttp "net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Page sizes of the event list.
const (
	defaultEventTop = 100
	maxEventTop     = 1000
	maxSettingsBody = 16 << 10
)

const exampleSettingsUpdate = `{"customerManagedKeys":{"autoReenableEnvironments":false,"eventWebhookUrl":"https://hooks.contoso.com/keyhold"}}`

// eventRoutes declares the routes of events, settings and keys; none for
// a service that is unset.
func (s *Server) eventRoutes() []route {
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	var rs []route
	if s.Events != nil {
		rs = append(rs,
			route{Method: "GET", Pattern: bapPrefix + "/scopes/admin/events", Auth: admin, Timeout: apiTimeout, Handler: s.listEvents},
			route{Method: "POST", Pattern: bapPrefix + "/listTenantSettings", Auth: admin, Body: bodyIgnored, Timeout: apiTimeout, Handler: s.listTenantSettings},
			route{Method: "POST", Pattern: bapPrefix + "/updateTenantSettings", Auth: admin, Body: bodyJSON, MaxBody: maxSettingsBody, Timeout: apiTimeout, Handler: s.updateTenantSettings},
		)
		if _, ok := s.Events.(keyhold.WebhookTester); ok {
			rs = append(rs, route{Method: "POST", Pattern: bapPrefix + "/scopes/admin/events/test", Auth: admin, Body: bodyIgnored, Timeout: apiTimeout, Handler: s.testWebhook})
		}
	}
	if s.Keys != nil {
		rs = append(rs, route{Method: "GET", Pattern: "/common/discovery/v2.0/keys", Timeout: 10 * time.Second, Identity: true, Handler: s.signingKeys})
	}
	return rs
}

// listEvents: GET …/scopes/admin/events?top=N&before=ID. Events come
// newest first; a full page carries a nextLink to the next one.
func (s *Server) listEvents(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	limit := defaultEventTop
	var before int64
	if v := q.Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventTop {
			return keyhold.Errorf(keyhold.CodeBadRequest, "query parameter top=%q is not valid: use a whole number from 1 to %d", keyhold.Clip(v), maxEventTop)
		}
		limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return keyhold.Errorf(keyhold.CodeBadRequest, "query parameter before=%q is not valid: use the id of an event, as in the nextLink of the previous page", keyhold.Clip(v))
		}
		before = n
	}
	events, err := s.Events.ListEvents(r.Context(), before, limit)
	if err != nil {
		return err
	}
	out := listJSON[keyhold.EventView]{Value: []keyhold.EventView{}}
	for _, e := range events {
		out.Value = append(out.Value, e.View(true))
	}
	if len(events) == limit {
		next := url.Values{}
		if v := q.Get("api-version"); v != "" {
			next.Set("api-version", v)
		}
		next.Set("top", strconv.Itoa(limit))
		next.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
		out.NextLink = s.baseURL(r) + r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// testWebhook: POST …/scopes/admin/events/test writes a WebhookTest event
// that the webhook receives as any other: 201 with the event, whose
// delivery the event list then follows.
func (s *Server) testWebhook(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ev, err := s.Events.(keyhold.WebhookTester).TestWebhook(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, ev.View(true))
	return nil
}

// tenantSettingsJSON is a tenant's settings on the wire.
type tenantSettingsJSON struct {
	TenantID            string          `json:"tenantId"`
	CustomerManagedKeys cmkSettingsJSON `json:"customerManagedKeys"`
	LastModifiedTime    *time.Time      `json:"lastModifiedTime,omitempty"`
	LastModifiedBy      string          `json:"lastModifiedBy,omitempty"`
}

type cmkSettingsJSON struct {
	AutoReenableEnvironments bool   `json:"autoReenableEnvironments"`
	EventWebhookURL          string `json:"eventWebhookUrl"`
}

func toTenantSettingsJSON(t *keyhold.TenantSettings) tenantSettingsJSON {
	j := tenantSettingsJSON{TenantID: t.TenantID, CustomerManagedKeys: cmkSettingsJSON{AutoReenableEnvironments: t.AutoReenable, EventWebhookURL: t.WebhookURL},
		LastModifiedBy: t.UpdatedBy}
	if !t.UpdatedAt.IsZero() {
		at := t.UpdatedAt.UTC()
		j.LastModifiedTime = &at
	}
	return j
}

// listTenantSettings: POST /providers/Microsoft.BusinessAppPlatform/listTenantSettings.
func (s *Server) listTenantSettings(w nethttp.ResponseWriter, r *nethttp.Request) error {
	t, err := s.Events.TenantSettings(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toTenantSettingsJSON(t))
	return nil
}

// updateTenantSettings: POST /providers/Microsoft.BusinessAppPlatform/updateTenantSettings.
func (s *Server) updateTenantSettings(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	patch, err := parseSettingsPatch(body)
	if err != nil {
		return err
	}
	t, err := s.Events.UpdateTenantSettings(r.Context(), patch)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toTenantSettingsJSON(t))
	return nil
}

// parseSettingsPatch reads an update: {"customerManagedKeys":{…}} with any
// of its two fields; anything else is refused.
func parseSettingsPatch(body []byte) (keyhold.TenantSettingsPatch, error) {
	var patch keyhold.TenantSettingsPatch
	var top map[string]json.RawMessage
	if err := decodeJSON(body, &top, exampleSettingsUpdate); err != nil {
		return patch, err
	}
	for k := range top {
		if k != "customerManagedKeys" {
			return patch, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body field %q is not a setting Keyhold knows: send %s", keyhold.Clip(k), exampleSettingsUpdate)
		}
	}
	raw, ok := top["customerManagedKeys"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return patch, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body has no customerManagedKeys object: send %s", exampleSettingsUpdate)
	}
	var fields map[string]json.RawMessage
	if err := decodeJSON(raw, &fields, exampleSettingsUpdate); err != nil {
		return patch, err
	}
	known := []string{"autoReenableEnvironments", "eventWebhookUrl"}
	for k, v := range fields {
		if !slices.Contains(known, k) {
			return patch, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "customerManagedKeys.%s is not a setting: use %s", keyhold.Clip(k), strings.Join(known, " or "))
		}
		switch k {
		case "autoReenableEnvironments":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return patch, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "customerManagedKeys.autoReenableEnvironments must be true or false, as in %s", exampleSettingsUpdate)
			}
			patch.AutoReenable = &b
		case "eventWebhookUrl":
			var u string
			if err := json.Unmarshal(v, &u); err != nil {
				return patch, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "customerManagedKeys.eventWebhookUrl must be a string (\"\" removes the webhook), as in %s", exampleSettingsUpdate)
			}
			patch.WebhookURL = &u
		}
	}
	return patch, nil
}

// signingKeys: GET /common/discovery/v2.0/keys, Entra ID's JWKS route
// for any tenant; each tenant's own is in oidc.go.
// The keys are the platform's and do not depend on the tenant.
func (s *Server) signingKeys(w nethttp.ResponseWriter, r *nethttp.Request) error {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, nethttp.StatusOK, struct {
		Keys []keyhold.JWK `json:"keys"`
	}{s.Keys.SigningKeys()})
	return nil
}
