package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// The customer-managed key commands: "env link" and "env unlink" (which
// start a durable operation and, unless --no-wait, follow it to its end),
// "operation show" and "operation wait", and "policy environments" and
// "policy key-versions". They use the http package's Client through the
// keyhold.CMKService contract.

// cmkServices returns a function that connects with the saved login, as
// Factory.Client does, for the CMK commands.
func cmkServices(f *Factory) func() (keyhold.CMKClient, error) {
	return connect(f, func(c *khttp.Client) keyhold.CMKClient { return c })
}

// addCMKEnvCommands adds "link" and "unlink" to the env command group.
func addCMKEnvCommands(env *cobra.Command, f *Factory) *cobra.Command {
	env.AddCommand(newCmdEnvLink(f, nil, keyhold.OpLink), newCmdEnvLink(f, nil, keyhold.OpUnlink))
	return env
}

// addCMKPolicyCommands adds "environments" and "key-versions" to the
// policy command group.
func addCMKPolicyCommands(policy *cobra.Command, f *Factory) *cobra.Command {
	policy.AddCommand(newCmdPolicyEnvironments(f, nil), newCmdPolicyKeyVersions(f, nil))
	return policy
}

func newCmdOperation(f *Factory) *cobra.Command {
	cmd := newGroup("operation", "Follow long-running operations (link, unlink, re-key, restore, copy, reset)")
	cmd.AddCommand(newCmdOperationShow(f, nil), newCmdOperationWait(f, nil))
	return cmd
}

// PolicyRef is how a command names an enterprise policy: --policy with its
// systemId or resource id, or its name with -g (and --subscription).
type PolicyRef struct {
	Policy        string // --policy
	ResourceGroup string // -g, with a policy name
	Subscription  string // --subscription, with a policy name
}

func (p *PolicyRef) flags(cmd *cobra.Command, usage string) {
	cmd.Flags().StringVar(&p.Policy, "policy", "", usage)
	cmd.Flags().StringVarP(&p.ResourceGroup, "resource-group", "g", "", "Resource group (`RG`) of a policy given by name")
	subscriptionFlagOn(cmd, &p.Subscription)
}

// check refuses a --policy that is neither a systemId, nor a resource id,
// nor a name with -g.
func (p *PolicyRef) check() error {
	v := strings.ToLower(p.Policy)
	switch {
	case p.Policy == "":
		return nil
	case strings.HasPrefix(v, "/regions/"), strings.HasPrefix(v, "/subscriptions/"):
		if p.ResourceGroup != "" {
			return usageErrorf("-g is only for a policy given by name: --policy %s names its policy fully", p.Policy)
		}
	case strings.Contains(p.Policy, "/"):
		return usageErrorf("--policy %q is not valid: give the policy's systemId (/regions/…), its resource id (/subscriptions/…), or its name with -g RG", p.Policy)
	case p.ResourceGroup == "":
		return usageErrorf("--policy %s is a policy name: give its resource group with -g RG", p.Policy)
	}
	return nil
}

// systemID resolves the policy to its systemId, reading the policy for a
// resource id or a name (in --subscription, else the login's).
func (p *PolicyRef) systemID(ctx context.Context, c keyhold.CMKClient, login func() (string, error)) (string, error) {
	v := strings.ToLower(p.Policy)
	if strings.HasPrefix(v, "/regions/") {
		return p.Policy, nil
	}
	id := p.Policy
	if !strings.HasPrefix(v, "/subscriptions/") {
		sub, err := resolveSubscription(p.Subscription, login)
		if err != nil {
			return "", err
		}
		ep := keyhold.EnterprisePolicy{SubscriptionID: sub, ResourceGroup: p.ResourceGroup, Name: p.Policy}
		id = ep.ID()
	}
	return c.PolicySystemID(ctx, id)
}

// EnvLinkOptions are the parsed arguments of "keyhold env link" and
// "keyhold env unlink".
type EnvLinkOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.CMKClient, error)
	Format Format

	Action string // keyhold.OpLink or keyhold.OpUnlink
	EnvID  string
	PolicyRef
	// LoginSubscription reads the login's subscription, the default for
	// a policy given by name.
	LoginSubscription func() (string, error)
	NoWait            bool
	Timeout           time.Duration
}

func newCmdEnvLink(f *Factory, runF func(*EnvLinkOptions) error, action string) *cobra.Command {
	opts := &EnvLinkOptions{IO: f.IO, Client: cmkServices(f), Action: action, LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "link <env> --policy (SYSTEM_ID | RESOURCE_ID | NAME -g RG) [--no-wait]",
		Short: "Encrypt an environment with the customer-managed key of an enterprise policy",
		Long: `Link an environment to an Encryption enterprise policy, so that the policy's
key in the customer's key vault protects its data, or move it to another
policy if it is linked already. The environment must be a Managed Environment
in the policy's region, and you need the Power Platform (or Dynamics 365, or
Global) Administrator role and Reader on the policy.

The link runs as an operation: the environment is disabled while its key
changes custody, then re-enabled while a re-key moves its data to a new key.
The command waits until the operation ends and shows its progress; it exits 0
if it succeeds and 1 if it fails, printing why (the data then stays under the
platform's key, and you can run the link again). With --no-wait it prints the
operation id and returns: follow it with "keyhold operation wait <id>".`,
		Example: `  keyhold env link $ENV --policy contoso-cmk -g contoso-rg
  keyhold env link $ENV --policy /regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/4ad5…
  OP=$(keyhold env link $ENV --policy contoso-cmk -g contoso-rg --no-wait -o id)`,
		Args: exactArgs("env"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.EnvID = args[0]
			if opts.Action == keyhold.OpLink {
				if err := requireFlags(cmd, "policy"); err != nil {
					return err
				}
			}
			if err := opts.PolicyRef.check(); err != nil {
				return err
			}
			if opts.Timeout < 0 {
				return usageErrorf("--timeout %s is negative: give a duration such as 30m, or 0 to wait as long as it takes", opts.Timeout)
			}
			if runF != nil {
				return runF(opts)
			}
			return envLinkRun(opts)
		},
	}
	policyUsage := "The enterprise policy: its systemId, its resource id, or its `NAME` with -g"
	if action == keyhold.OpUnlink {
		cmd.Use = "unlink <env> [--policy (SYSTEM_ID | RESOURCE_ID | NAME -g RG)] [--no-wait]"
		cmd.Short = "Return an environment to the platform's key"
		cmd.Long = `Unlink an environment from its enterprise policy, so that the platform's key
(Microsoft-managed) protects its data again. Without --policy, the policy the
environment is linked to is used.

Like link, it runs as an operation that the command follows to its end (exit 0
on success, 1 on failure) unless --no-wait is given.

Do not delete or disable the policy's key or its key vault, or take away the
policy's access to it, for 30 days afterwards: restores of the environment's
database need them. The command prints this warning, with the date, on
stderr ("keyhold policy key-versions" tells when each key version is safe to
disable).`
		cmd.Example = `  keyhold env unlink $ENV
  keyhold env unlink $ENV --policy contoso-cmk -g contoso-rg --no-wait -o id`
		policyUsage = "The enterprise policy (default: the one the environment is linked to): its systemId, resource id, or `NAME` with -g"
	}
	opts.PolicyRef.flags(cmd, policyUsage)
	cmd.Flags().BoolVar(&opts.NoWait, "no-wait", false, "Print the operation id and return without waiting")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 0, "Stop waiting after `DURATION` (exit 1; the operation goes on); 0 waits until it ends")
	return cmd
}

func envLinkRun(opts *EnvLinkOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var systemID string
	if opts.Policy == "" {
		// Only unlink gets here: the environment's own policy.
		e, err := c.FindEnvironment(opts.Ctx, opts.EnvID)
		if err != nil {
			return err
		}
		if e.PolicySystemID == "" {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s is not linked to an enterprise policy: its data is under the platform's key already", opts.EnvID)
		}
		systemID = e.PolicySystemID
	} else if systemID, err = opts.PolicyRef.systemID(opts.Ctx, c, opts.LoginSubscription); err != nil {
		return err
	}
	start := c.LinkPolicy
	if opts.Action == keyhold.OpUnlink {
		start = c.UnlinkPolicy
	}
	op, err := start(opts.Ctx, opts.EnvID, systemID)
	if err != nil {
		return err
	}
	// On stderr, so that -o id and -o json stay machine-readable; said
	// before the wait, so that a caller who stops waiting has seen it.
	for _, w := range op.Warnings {
		fmt.Fprintf(opts.IO.ErrOut, "Warning: %s\n", w)
	}
	if opts.NoWait {
		return printStarted(opts.IO.Out, opts.Format, op)
	}
	return waitAndPrint(opts.Ctx, opts.IO, opts.Format, c, op.ID, opts.Timeout)
}

// printStarted reports an operation that was started and not waited for.
func printStarted(w io.Writer, format Format, op *keyhold.Operation) error {
	switch format {
	case FormatJSON:
		return printJSON(w, op)
	case FormatID:
		_, err := fmt.Fprintln(w, op.ID)
		return err
	}
	_, err := fmt.Fprintf(w, "Started %s operation %s on %s\nFollow it with: keyhold operation wait %s\n",
		cell(op.Kind), cell(op.ID), cell(op.Target), cell(op.ID))
	return err
}

// waitAndPrint follows the operation id to its end, with a progress display
// on stderr, then prints it; a Failed operation is also its error.
func waitAndPrint(ctx context.Context, streams *IOStreams, format Format, c keyhold.OperationWaiter, id string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	p := newProgress(streams.ErrOut, time.Now)
	op, err := c.WaitOperation(ctx, id, 0, p.update)
	p.finish()
	if op == nil {
		return err
	}
	if op.State == keyhold.OperationRunning {
		if errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
			return fmt.Errorf("operation %s is still running after %s (it goes on): keyhold operation wait %s", op.ID, timeout, op.ID)
		}
		return err
	}
	if perr := printOperation(streams.Out, format, op); perr != nil {
		return perr
	}
	return err // the Failed operation's error, or nil
}

// progress shows a waited-for operation on a terminal as one line that is
// rewritten in place, and elsewhere (a log, a pipe) as one line each time
// its state, step or count changes.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	now   func() time.Time
	last  string // what the last line said, time left out
	wrote bool
}

func newProgress(w io.Writer, now func() time.Time) *progress {
	return &progress{w: w, tty: isTerminal(w), start: now(), now: now}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(op *keyhold.Operation) {
	s := describeOperation(op)
	elapsed := p.now().Sub(p.start).Round(time.Second)
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r\x1b[K%s, %s", s, elapsed)
	case s != p.last:
		fmt.Fprintf(p.w, "%s, %s\n", s, elapsed)
	}
	p.last, p.wrote = s, true
}

// finish ends the line a terminal display left open.
func (p *progress) finish() {
	if p.tty && p.wrote {
		fmt.Fprintln(p.w)
	}
}

// describeOperation says where an operation stands, in one line:
// "link 1f…: Running, step rekey, 120/500 (24%)".
func describeOperation(op *keyhold.Operation) string {
	s := fmt.Sprintf("%s %s: %s", cell(op.Kind), cell(op.ID), cell(string(op.State)))
	if op.State == keyhold.OperationRunning && op.Step != "" {
		s += ", step " + cell(op.Step)
	}
	if c := countOf(op); c != "" {
		s += ", " + c
	}
	return s
}

// countOf renders an operation's progress: "120/500 (24%)", "120" when the
// total is unknown, "" when there is nothing to count.
func countOf(op *keyhold.Operation) string {
	switch {
	case op.Total > 0:
		return fmt.Sprintf("%d/%d (%d%%)", op.Done, op.Total, op.Done*100/op.Total)
	case op.Done > 0:
		return fmt.Sprint(op.Done)
	}
	return ""
}

// printOperation writes one operation: indented JSON, its id, or one field
// per line.
func printOperation(w io.Writer, format Format, op *keyhold.Operation) error {
	switch format {
	case FormatJSON:
		return printJSON(w, op)
	case FormatID:
		_, err := fmt.Fprintln(w, op.ID)
		return err
	}
	step, count := op.Step, countOf(op)
	if step == "" {
		step = "-"
	}
	if count == "" {
		count = "-"
	}
	tw := newTable(w)
	rows := []struct{ k, v string }{
		{"ID:", op.ID},
		{"Kind:", op.Kind},
		{"Target:", op.Target},
		{"State:", string(op.State)},
		{"Step:", step},
		{"Progress:", count},
	}
	if op.Phase != "" {
		// After State: what a Running operation is doing (queued,
		// paused, rolling back, …).
		rows = slices.Insert(rows, 4, struct{ k, v string }{"Phase:", string(op.Phase)})
	}
	if op.ErrorCode != "" || op.ErrorMsg != "" {
		rows = append(rows, struct{ k, v string }{"Error:", op.ErrorCode + ": " + op.ErrorMsg})
	}
	rows = append(rows, []struct{ k, v string }{
		{"Created:", timestamp(op.CreatedAt)},
		{"Updated:", timestamp(op.UpdatedAt)},
		{"Finished:", timestamp(op.FinishedAt)},
	}...)
	for _, r := range rows {
		row(tw, r.k, r.v)
	}
	return tw.Flush()
}

// OperationShowOptions are the parsed arguments of "keyhold operation show".
type OperationShowOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.CMKClient, error)
	Format Format

	ID string
}

func newCmdOperationShow(f *Factory, runF func(*OperationShowOptions) error) *cobra.Command {
	opts := &OperationShowOptions{IO: f.IO, Client: cmkServices(f)}
	return &cobra.Command{
		Use:   "show <id>",
		Short: "Show an operation",
		Args:  exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return operationShowRun(opts)
		},
	}
}

func operationShowRun(opts *OperationShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	op, err := c.GetOperation(opts.Ctx, opts.ID)
	if err != nil {
		return err
	}
	return printOperation(opts.IO.Out, opts.Format, op)
}

// OperationWaitOptions are the parsed arguments of "keyhold operation wait".
type OperationWaitOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.CMKClient, error)
	Format Format

	ID      string
	Timeout time.Duration
}

func newCmdOperationWait(f *Factory, runF func(*OperationWaitOptions) error) *cobra.Command {
	opts := &OperationWaitOptions{IO: f.IO, Client: cmkServices(f)}
	cmd := &cobra.Command{
		Use:   "wait <id> [--timeout DURATION]",
		Short: "Wait for an operation to end",
		Long: `Wait for an operation to end, showing its progress on stderr, then print it.
Exits 0 if it succeeded, 1 if it failed (printing why) or is still running
when --timeout passes.`,
		Args: exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.ID = args[0]
			if opts.Timeout < 0 {
				return usageErrorf("--timeout %s is negative: give a duration such as 30m, or 0 to wait as long as it takes", opts.Timeout)
			}
			if runF != nil {
				return runF(opts)
			}
			return operationWaitRun(opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 0, "Stop waiting after `DURATION` (exit 1); 0 waits until it ends")
	return cmd
}

func operationWaitRun(opts *OperationWaitOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	return waitAndPrint(opts.Ctx, opts.IO, opts.Format, c, opts.ID, opts.Timeout)
}

// PolicyEnvironmentsOptions are the parsed arguments of "keyhold policy
// environments".
type PolicyEnvironmentsOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.CMKClient, error)
	Format Format
}

func newCmdPolicyEnvironments(f *Factory, runF func(*PolicyEnvironmentsOptions) error) *cobra.Command {
	opts := &PolicyEnvironmentsOptions{IO: f.IO, Client: cmkServices(f)}
	return &cobra.Command{
		Use:   "environments",
		Short: "List the environments with policies",
		Long: `List the tenant's environments that are linked to an enterprise policy, or
whose last link or unlink failed, with their state, encryption status, policy
and last operation: the admin center's "Environments with policies" tab.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return policyEnvironmentsRun(opts)
		},
	}
}

func policyEnvironmentsRun(opts *PolicyEnvironmentsOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	links, err := c.PolicyLinks(opts.Ctx)
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		if links == nil {
			links = []*keyhold.PolicyLink{}
		}
		return printJSON(opts.IO.Out, links)
	case FormatID:
		for _, l := range links {
			if l.Environment != nil {
				fmt.Fprintln(opts.IO.Out, l.Environment.ID)
			}
		}
		return nil
	}
	if len(links) == 0 {
		fmt.Fprintln(opts.IO.Out, "No environments with policies")
		return nil
	}
	// The WARNING column (spec 004's flow warning) shows only when some
	// environment has one.
	warned := slices.ContainsFunc(links, func(l *keyhold.PolicyLink) bool { return l.Environment != nil && l.Environment.PlatformKeyFlows > 0 })
	tw := newTable(opts.IO.Out)
	head := []string{"ENVIRONMENT", "NAME", "LOCATION", "STATE", "ENCRYPTION", "POLICY", "LAST OPERATION"}
	if warned {
		head = append(head, "WARNING")
	}
	row(tw, head...)
	for _, l := range links {
		e := l.Environment
		if e == nil {
			continue
		}
		policy := e.PolicySystemID
		if l.Policy != nil {
			policy = l.Policy.Name
		}
		last := "-"
		if op := l.LastOperation; op != nil {
			last = op.Kind + " " + string(op.State) + " " + op.ID
		}
		cells := []string{e.ID, e.DisplayName, e.Location, stateText(e.State), string(e.EncryptionStatus), orDash(policy), last}
		if warned {
			warning := "-"
			if e.PlatformKeyFlows > 0 {
				warning = flowWarning(e)
			}
			cells = append(cells, warning)
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

// flowWarning words spec 004's warning with the count and where to look.
func flowWarning(e *keyhold.Environment) string {
	return fmt.Sprintf("%s (%d flows; keyhold flow list --env %s --protected-by platform)", keyhold.FlowWarningMessage, e.PlatformKeyFlows, e.ID)
}

// stateText words a runtime state as the admin center shows it.
func stateText(s keyhold.RuntimeState) string {
	if s == keyhold.StateLocked {
		return "Environment disabled"
	}
	return string(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// PolicyKeyVersionsOptions are the parsed arguments of "keyhold policy
// key-versions".
type PolicyKeyVersionsOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.CMKClient, error)
	Format Format
	Now    func() time.Time
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)

	ResourceGroup string
	Name          string
}

func newCmdPolicyKeyVersions(f *Factory, runF func(*PolicyKeyVersionsOptions) error) *cobra.Command {
	opts := &PolicyKeyVersionsOptions{IO: f.IO, Client: cmkServices(f), Now: time.Now, LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "key-versions -g RG -n NAME",
		Short: "Show which versions of a policy's key are in use, and when each may be disabled",
		Long: `Show, for each version of the key that an enterprise policy names, how many
environment keys and backups still depend on it, when it was last used, and
whether it is safe to disable. A version must stay enabled for 28 days after
its last use, so that older database backups can be restored.`,
		Example: `  keyhold policy key-versions -g contoso-rg -n contoso-cmk`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "resource-group", "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return policyKeyVersionsRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.ResourceGroup, "resource-group", "g", "", "Resource group (`RG`) of the policy")
	cmd.Flags().StringVarP(&opts.Name, "name", "n", "", "Policy `NAME`")
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

func policyKeyVersionsRun(opts *PolicyKeyVersionsOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p := keyhold.EnterprisePolicy{SubscriptionID: sub, ResourceGroup: opts.ResourceGroup, Name: opts.Name}
	usage, err := c.KeyVersionUsage(opts.Ctx, p.ID())
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		if usage == nil {
			usage = []*keyhold.KeyVersionUsage{}
		}
		return printJSON(opts.IO.Out, usage)
	case FormatID:
		for _, u := range usage {
			if u.RetainedBYOK == nil { // not a version of the key
				fmt.Fprintln(opts.IO.Out, u.Version)
			}
		}
		return nil
	}
	if len(usage) == 0 {
		fmt.Fprintln(opts.IO.Out, "No key versions")
		return nil
	}
	now := opts.Now()
	tw := newTable(opts.IO.Out)
	row(tw, "VERSION", "CURRENT", "LIVE EKS", "BACKUPS", "LAST USED", "SAFE TO DISABLE")
	for _, u := range usage {
		if r := u.RetainedBYOK; r != nil { // the legacy key its environments migrated from
			row(tw, "BYOK "+r.KeyID, "no", fmt.Sprint(u.LiveKeys), fmt.Sprint(r.PreMigrationBackups), timestamp(r.MigratedAt), "kept until "+timestamp(r.ShredAfter))
			continue
		}
		row(tw, u.Version, yesNo(u.Current), fmt.Sprint(u.LiveKeys), fmt.Sprint(u.Backups), timestamp(u.LastUsedAt), safeToDisable(u, now))
	}
	return tw.Flush()
}

// safeToDisable says whether a key version may be disabled at now, and if
// not, why or from when.
func safeToDisable(u *keyhold.KeyVersionUsage, now time.Time) string {
	switch {
	case u.Current:
		return "no (current version)"
	case u.LiveKeys > 0 || u.Backups > 0:
		return "no (in use)"
	}
	from := u.SafeToDisableAt
	if from.IsZero() && !u.LastUsedAt.IsZero() {
		from = u.LastUsedAt.Add(keyhold.KeyVersionRetention)
	}
	if from.IsZero() || !now.Before(from) {
		return "yes"
	}
	return "no, from " + timestamp(from)
}
