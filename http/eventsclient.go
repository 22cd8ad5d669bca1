package http

import (
	"context"
	"net/url"
	"strconv"

	"github.com/keyhold/keyhold"
)

// ListEventViews lists the caller's tenant's events, newest first, as the
// API renders them (with their webhook delivery state): at most limit (the
// server's default if 0), with an id below beforeID if set.
func (c *Client) ListEventViews(ctx context.Context, beforeID int64, limit int) ([]keyhold.EventView, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("top", strconv.Itoa(limit))
	}
	if beforeID > 0 {
		q.Set("before", strconv.FormatInt(beforeID, 10))
	}
	path := bapPrefix + "/scopes/admin/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out listJSON[keyhold.EventView]
	if err := c.do(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}

// TestWebhook writes a WebhookTest event for the caller's tenant, which
// its webhook receives as any other; ListEventViews then shows how its
// delivery went.
func (c *Client) TestWebhook(ctx context.Context) (*keyhold.EventView, error) {
	var out keyhold.EventView
	if err := c.do(ctx, "POST", bapPrefix+"/scopes/admin/events/test?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TenantSettings returns the caller's tenant's settings.
func (c *Client) TenantSettings(ctx context.Context) (*keyhold.TenantSettings, error) {
	var out tenantSettingsJSON
	if err := c.do(ctx, "POST", bapPrefix+"/listTenantSettings?api-version="+defaultBAPAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	return out.settings(), nil
}

// UpdateTenantSettings changes the caller's tenant's settings that patch
// names and returns them all.
func (c *Client) UpdateTenantSettings(ctx context.Context, patch keyhold.TenantSettingsPatch) (*keyhold.TenantSettings, error) {
	body := map[string]map[string]any{"customerManagedKeys": {}}
	if patch.AutoReenable != nil {
		body["customerManagedKeys"]["autoReenableEnvironments"] = *patch.AutoReenable
	}
	if patch.WebhookURL != nil {
		body["customerManagedKeys"]["eventWebhookUrl"] = *patch.WebhookURL
	}
	var out tenantSettingsJSON
	if err := c.do(ctx, "POST", bapPrefix+"/updateTenantSettings?api-version="+defaultBAPAPIVersion, body, &out); err != nil {
		return nil, err
	}
	return out.settings(), nil
}

func (j *tenantSettingsJSON) settings() *keyhold.TenantSettings {
	s := &keyhold.TenantSettings{TenantID: j.TenantID, AutoReenable: j.CustomerManagedKeys.AutoReenableEnvironments,
		WebhookURL: j.CustomerManagedKeys.EventWebhookURL, UpdatedBy: j.LastModifiedBy}
	if j.LastModifiedTime != nil {
		s.UpdatedAt = *j.LastModifiedTime
	}
	return s
}
