package http

import (
	nethttp "net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
)

// The admin center's events (issue 17): the tenant's events, newest
// first (a lock names the key vault changes that explain it, who made
// them), with their webhook delivery, and the tenant's webhook, set and
// removed through the EventService that the events and tenant settings
// API serves.

const adminEventsPage = 50

// adminEventKinds are the kinds the events page filters by, in the order
// its filter lists them.
var adminEventKinds = []string{
	keyhold.EventEnvironmentLocked, keyhold.EventEnvironmentEnabled, keyhold.EventPolicyHealthChanged,
	keyhold.EventEnvironmentDeletionWarning, keyhold.EventEnvironmentCryptoShredded, keyhold.EventEnvironmentDeleted,
	keyhold.EventFlowRunFailed, keyhold.EventWebhookTest,
}

// adminEventsScan bounds how many pages of the service's list one filtered
// page reads: a rare kind is found among the last adminEventsScan ×
// adminEventsPage events, and Older goes on from where the scan stopped.
const adminEventsScan = 20

type eventsData struct {
	Events []*keyhold.Event
	// Older is the next page's before= (the filters go with it), ""
	// at the end.
	Older string
	// Kind and Env filter the list ("" for all); Kinds are the choices.
	Kind, Env string
	Kinds     []string
	Webhook   string // the tenant's webhook URL, "" for none
	// Form is the URL just refused, shown again to be fixed.
	Form     string
	Settings *keyhold.TenantSettings
	CanTest  bool // the service can send a test event
}

// adminEventsView fills v with the events page: the list (before=… pages
// back) and the webhook.
func (s *Server) adminEventsView(r *nethttp.Request, v *adminView) error {
	d := &eventsData{}
	_, d.CanTest = s.Events.(keyhold.WebhookTester)
	v.Title, v.Nav, v.Data = "Events", "events", d
	if s.Events == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server keeps no events")
	}
	q := r.URL.Query()
	var before int64
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return keyhold.Errorf(keyhold.CodeBadRequest, "before=%q is not an event's id: use the Older events link", keyhold.Clip(b))
		}
		before = n
	}
	d.Kinds, d.Kind, d.Env = adminEventKinds, q.Get("kind"), strings.TrimSpace(q.Get("environment"))
	if d.Kind != "" && !slices.Contains(adminEventKinds, d.Kind) {
		k := d.Kind
		d.Kind = ""
		return keyhold.Errorf(keyhold.CodeBadRequest, "kind=%q is not an event kind: choose one of %s, or all", keyhold.Clip(k), strings.Join(adminEventKinds, ", "))
	}
	match := func(e *keyhold.Event) bool {
		return (d.Kind == "" || e.Kind == d.Kind) && (d.Env == "" || strings.EqualFold(e.EnvID, d.Env))
	}
	// Pages of the service's list, newest first, until a page of matches
	// or the end (or adminEventsScan pages: Older goes on from there).
	more := false
	for range adminEventsScan {
		evs, err := s.Events.ListEvents(r.Context(), before, adminEventsPage)
		if err != nil {
			return err
		}
		for _, e := range evs {
			before = e.ID
			if match(e) {
				d.Events = append(d.Events, e)
				if len(d.Events) == adminEventsPage {
					break
				}
			}
		}
		more = len(evs) == adminEventsPage
		if !more || len(d.Events) == adminEventsPage {
			break
		}
	}
	if more && before > 1 {
		d.Older = strconv.FormatInt(before, 10)
	}
	set, err := s.Events.TenantSettings(r.Context())
	if err != nil {
		return err
	}
	d.Settings, d.Webhook, d.Form = set, set.WebhookURL, set.WebhookURL
	return nil
}

// adminEvents: GET /admin/events?before=…&kind=…&environment=….
func (s *Server) adminEvents(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	v.Done = doneNote(r.URL.Query().Get("done"))
	if err := s.adminEventsView(r, &v); err != nil {
		return adminFail(w, v, "events", err)
	}
	return renderAdmin(w, nethttp.StatusOK, "events", v)
}

// adminEventsAction: POST /admin/events with action=webhook (url=…, ""
// removes it) or action=test (a WebhookTest event, delivered as any
// other, whose delivery the list then shows). A refusal shows the service's message with the URL kept
// in the field, and changes nothing.
func (s *Server) adminEventsAction(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	if err := s.adminEventsView(r, &v); err != nil {
		return adminFail(w, v, "events", err)
	}
	d := v.Data.(*eventsData)
	var err error
	done := ""
	switch a := r.PostForm.Get("action"); a {
	case "webhook":
		u := strings.TrimSpace(r.PostForm.Get("url"))
		d.Form = u
		_, err = s.Events.UpdateTenantSettings(r.Context(), keyhold.TenantSettingsPatch{WebhookURL: &u})
		done = "webhook-set"
		if u == "" {
			done = "webhook-removed"
		}
	case "test":
		tester, ok := s.Events.(keyhold.WebhookTester)
		if !ok {
			err = keyhold.Errorf(keyhold.CodeNotSupported, "this server can't send a test event")
			break
		}
		_, err = tester.TestWebhook(r.Context())
		done = "webhook-tested"
	default:
		err = keyhold.Errorf(keyhold.CodeBadRequest, "action %q is not one of this page's: use webhook or test", keyhold.Clip(a))
	}
	if err != nil {
		return adminFail(w, v, "events", err)
	}
	nethttp.Redirect(w, r, adminPrefix+"/events?done="+done, nethttp.StatusSeeOther)
	return nil
}
