package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// "keyhold events list" and "keyhold tenant settings show|set": what
// happened to the tenant's environments under customer-managed keys (locks,
// re-enables, deletion warnings), and the tenant's choices about it
// (automatic re-enable, the event webhook).

// eventClient connects with the saved login, as Factory.Client does.
func eventClient(f *Factory) func() (keyhold.EventClient, error) {
	return connect(f, func(c *khttp.Client) keyhold.EventClient { return c })
}

func newCmdEvents(f *Factory) *cobra.Command {
	cmd := newGroup("events", "Read the events of customer-managed keys: locks, re-enables, deletion warnings")
	cmd.AddCommand(newCmdEventsList(f, nil), newCmdEventsTest(f))
	return cmd
}

// newCmdEventsTest is "keyhold events test": a WebhookTest event that the
// tenant's webhook receives as any other, so that "events list" then says
// whether the webhook works.
func newCmdEventsTest(f *Factory) *cobra.Command {
	client := eventClient(f)
	return &cobra.Command{
		Use:   "test",
		Short: "Send the tenant's webhook a test event",
		Long: `Write a WebhookTest event for the logged-in tenant. It is posted to the
tenant's webhook, signed and retried, as any other event, and "keyhold
events list" shows how its delivery went. Refused without a webhook
("keyhold tenant settings set --webhook-url URL" sets one).`,
		Example: `  keyhold events test
  keyhold events list --top 1`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			e, err := c.TestWebhook(cmd.Context())
			if err != nil {
				return err
			}
			if f.Format == FormatJSON {
				return printJSON(f.IO.Out, e)
			}
			if f.Format == FormatID {
				fmt.Fprintln(f.IO.Out, e.ID)
				return nil
			}
			state := "-"
			if e.Delivery != nil {
				state = string(e.Delivery.State)
			}
			fmt.Fprintf(f.IO.Out, "Event %s %s written; webhook delivery: %s\n", e.ID, e.Kind, state)
			return nil
		},
	}
}

// EventsListOptions are the parsed arguments of "keyhold events list".
type EventsListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EventClient, error)
	Format Format

	Top int
}

// maxEventTop bounds --top; page further with the API.
const maxEventTop = 1000

func newCmdEventsList(f *Factory, runF func(*EventsListOptions) error) *cobra.Command {
	opts := &EventsListOptions{IO: f.IO, Client: eventClient(f)}
	cmd := &cobra.Command{
		Use:     "list [--top N]",
		Aliases: []string{"ls"},
		Short:   "List the tenant's events, newest first",
		Long: `List the events of the logged-in tenant, newest first: an enterprise
policy's key health changing, environments locked because their key became
inaccessible, re-enabled, warned before deletion, crypto-shredded and
deleted. An event about a revocation lists the key vault changes behind it:
what changed and who changed it. If the tenant set a webhook, each event
shows how its delivery went.`,
		Example: `  keyhold events list
  keyhold events list --top 10 -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if opts.Top < 1 || opts.Top > maxEventTop {
				return usageErrorf("--top %d is out of range: use 1 to %d", opts.Top, maxEventTop)
			}
			if runF != nil {
				return runF(opts)
			}
			return eventsListRun(opts)
		},
	}
	cmd.Flags().IntVar(&opts.Top, "top", 50, "List at most `N` events")
	return cmd
}

func eventsListRun(opts *EventsListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	events, err := c.ListEventViews(opts.Ctx, 0, opts.Top)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if events == nil {
			events = []keyhold.EventView{}
		}
		return printJSON(opts.IO.Out, events)
	}
	if opts.Format == FormatID {
		for _, e := range events {
			fmt.Fprintln(opts.IO.Out, e.ID)
		}
		return nil
	}
	if len(events) == 0 {
		fmt.Fprintln(opts.IO.Out, "No events")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "TIME", "KIND", "ENVIRONMENT", "WEBHOOK", "SUMMARY")
	for _, e := range events {
		env, hook := dash(e.EnvironmentID), "-"
		if e.Delivery != nil {
			hook = string(e.Delivery.State)
		}
		row(tw, timestamp(e.Time), e.Kind, env, hook, e.Summary)
		for _, ch := range e.Changes {
			who := ch.ActorID
			if ch.ActorName != "" {
				who = ch.ActorName + " (" + ch.ActorID + ")"
			}
			row(tw, "", "  changed", "", "", fmt.Sprintf("%s %s by %s at %s", ch.Action, ch.Target, who, timestamp(ch.At)))
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newCmdTenant(f *Factory) *cobra.Command {
	cmd := newGroup("tenant", "Manage the tenant's settings and licences")
	settings := newGroup("settings", "Show or change the tenant's customer-managed key settings")
	settings.AddCommand(newCmdTenantSettingsShow(f, nil), newCmdTenantSettingsSet(f, nil))
	cmd.AddCommand(settings, newCmdTenantLicence(f), newCmdTenantEgress(f))
	return cmd
}

// TenantSettingsOptions are the parsed arguments of "keyhold tenant
// settings show" and "set" (Patch is empty for show).
type TenantSettingsOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EventClient, error)
	Format Format

	Patch keyhold.TenantSettingsPatch
}

func newCmdTenantSettingsShow(f *Factory, runF func(*TenantSettingsOptions) error) *cobra.Command {
	opts := &TenantSettingsOptions{IO: f.IO, Client: eventClient(f)}
	return &cobra.Command{
		Use:   "show",
		Short: "Show the tenant's settings",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return tenantSettingsRun(opts)
		},
	}
}

func newCmdTenantSettingsSet(f *Factory, runF func(*TenantSettingsOptions) error) *cobra.Command {
	opts := &TenantSettingsOptions{IO: f.IO, Client: eventClient(f)}
	var auto bool
	var hook string
	cmd := &cobra.Command{
		Use:   "set [--auto-reenable=true|false] [--webhook-url URL]",
		Short: "Change the tenant's settings",
		Long: `Change the tenant's customer-managed key settings; what you don't name stays.

--auto-reenable=true re-enables a locked environment by itself as soon as a
health check proves its original key accessible again, instead of waiting
for an administrator to run "keyhold env enable". It is off by default: the
customer decides when data is served again.

--webhook-url sends every event to an https URL as a signed POST (""
removes it). The Keyhold-Signature header is an ES256 JWT, verifiable with
the keys at <server>/common/discovery/v2.0/keys, whose claims bind the
body (body_sha256), the event (jti) and your URL (aud).`,
		Example: `  keyhold tenant settings set --webhook-url https://hooks.contoso.com/keyhold
  keyhold tenant settings set --auto-reenable=true`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if cmd.Flags().Changed("auto-reenable") {
				opts.Patch.AutoReenable = &auto
			}
			if cmd.Flags().Changed("webhook-url") {
				opts.Patch.WebhookURL = &hook
			}
			if opts.Patch.AutoReenable == nil && opts.Patch.WebhookURL == nil {
				return usageErrorf("nothing to change: give --auto-reenable or --webhook-url")
			}
			if runF != nil {
				return runF(opts)
			}
			return tenantSettingsRun(opts)
		},
	}
	cmd.Flags().BoolVar(&auto, "auto-reenable", false, "Re-enable locked environments by themselves once their key is accessible again")
	cmd.Flags().StringVar(&hook, "webhook-url", "", "Send every event to this https `URL` (\"\" removes the webhook)")
	return cmd
}

func tenantSettingsRun(opts *TenantSettingsOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var s *keyhold.TenantSettings
	if opts.Patch.AutoReenable == nil && opts.Patch.WebhookURL == nil {
		s, err = c.TenantSettings(opts.Ctx)
	} else {
		s, err = c.UpdateTenantSettings(opts.Ctx, opts.Patch)
	}
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, struct {
			TenantID     string `json:"tenantId"`
			AutoReenable bool   `json:"autoReenableEnvironments"`
			WebhookURL   string `json:"eventWebhookUrl"`
		}{s.TenantID, s.AutoReenable, s.WebhookURL})
	}
	if opts.Format == FormatID {
		fmt.Fprintln(opts.IO.Out, s.TenantID)
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "Tenant:", s.TenantID)
	row(tw, "Auto re-enable:", fmt.Sprintf("%t", s.AutoReenable))
	row(tw, "Event webhook:", dash(s.WebhookURL))
	if !s.UpdatedAt.IsZero() {
		row(tw, "Last changed:", timestamp(s.UpdatedAt)+" by "+s.UpdatedBy)
	}
	return tw.Flush()
}
