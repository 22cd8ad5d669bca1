package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdGroup(f *Factory) *cobra.Command {
	cmd := newGroup("group", "Manage resource groups")
	cmd.AddCommand(
		newCmdGroupCreate(f, nil),
		newCmdGroupList(f, nil),
		newCmdGroupShow(f, nil),
		newCmdGroupDelete(f, nil),
	)
	return cmd
}

// GroupCreateOptions are the parsed arguments of "keyhold group create".
type GroupCreateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)

	Name     string
	Location string
	Tags     []string
}

func newCmdGroupCreate(f *Factory, runF func(*GroupCreateOptions) error) *cobra.Command {
	opts := &GroupCreateOptions{IO: f.IO, Client: armServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "create -n NAME -l LOCATION [--tag KEY=VALUE]...",
		Short: "Create a resource group, or update its tags",
		Long: `Create a resource group in the subscription, or update the tags of the one of
that name (its location can't change). Needs the resource group write action
on it: Owner or Contributor of the subscription.`,
		Example: `  keyhold group create -n contoso-rg -l westeurope
  keyhold group create -n contoso-rg -l westeurope --tag env=prod`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name", "location"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return groupCreateRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Name, "name", "n", "", "Resource group `NAME`")
	cmd.Flags().StringVarP(&opts.Location, "location", "l", "", "Azure region (`LOCATION`), e.g. westeurope")
	cmd.Flags().StringArrayVar(&opts.Tags, "tag", nil, "Tag (`KEY=VALUE`), repeatable")
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

// subscriptionFlagOn declares --subscription on cmd.
func subscriptionFlagOn(cmd *cobra.Command, sub *string) {
	cmd.Flags().StringVar(sub, "subscription", "", "Subscription `ID` (default: the login's)")
}

func groupCreateRun(opts *GroupCreateOptions) error {
	tags, err := parseTags(opts.Tags)
	if err != nil {
		return err
	}
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	g := &keyhold.ResourceGroup{SubscriptionID: sub, Name: opts.Name, Location: opts.Location, Tags: tags}
	created, err := c.PutResourceGroup(opts.Ctx, g)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, g)
	}
	if opts.Format == FormatID {
		return printIDs(opts.IO.Out, g.ID())
	}
	verb := "Updated"
	if created {
		verb = "Created"
	}
	fmt.Fprintf(opts.IO.Out, "%s resource group %s in %s\n", verb, cell(g.Name), cell(g.Location))
	return nil
}

// GroupListOptions are the parsed arguments of "keyhold group list".
type GroupListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)
}

func newCmdGroupList(f *Factory, runF func(*GroupListOptions) error) *cobra.Command {
	opts := &GroupListOptions{IO: f.IO, Client: armServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the resource groups you may read",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return groupListRun(opts)
		},
	}
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

func groupListRun(opts *GroupListOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	gs, err := c.ListResourceGroups(opts.Ctx, sub)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if gs == nil {
			gs = []*keyhold.ResourceGroup{}
		}
		return printJSON(opts.IO.Out, gs)
	}
	if opts.Format == FormatID {
		for _, g := range gs {
			fmt.Fprintln(opts.IO.Out, g.ID())
		}
		return nil
	}
	if len(gs) == 0 {
		fmt.Fprintln(opts.IO.Out, "No resource groups")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "NAME", "LOCATION", "TAGS")
	for _, g := range gs {
		row(tw, g.Name, g.Location, tagList(g.Tags))
	}
	return tw.Flush()
}

// tagList renders tags as "k=v, k2=v2", sorted.
func tagList(tags map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// GroupShowOptions are the parsed arguments of "keyhold group show".
type GroupShowOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)

	Name string
}

func newCmdGroupShow(f *Factory, runF func(*GroupShowOptions) error) *cobra.Command {
	opts := &GroupShowOptions{IO: f.IO, Client: armServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "show -n NAME",
		Short: "Show a resource group",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return groupShowRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Name, "name", "n", "", "Resource group `NAME`")
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

func groupShowRun(opts *GroupShowOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	g, err := c.ResourceGroup(opts.Ctx, sub, opts.Name)
	if err != nil {
		return err
	}
	return printGroup(opts.IO.Out, opts.Format, g)
}

func printGroup(w io.Writer, format Format, g *keyhold.ResourceGroup) error {
	if format == FormatJSON {
		return printJSON(w, g)
	}
	if format == FormatID {
		return printIDs(w, g.ID())
	}
	tw := newTable(w)
	row(tw, "ID:", g.ID())
	row(tw, "Name:", g.Name)
	row(tw, "Location:", g.Location)
	row(tw, "Tags:", tagList(g.Tags))
	return tw.Flush()
}

// GroupDeleteOptions are the parsed arguments of "keyhold group delete".
type GroupDeleteOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)

	Name      string
	Confirmed bool
}

func newCmdGroupDelete(f *Factory, runF func(*GroupDeleteOptions) error) *cobra.Command {
	opts := &GroupDeleteOptions{IO: f.IO, Client: armServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "delete -n NAME --yes",
		Short: "Delete a resource group and everything in it",
		Long: `Delete a resource group with the resources in it (their providers delete them
first) and the role assignments on it and them. It can't be undone, so it
needs --yes.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if !opts.Confirmed {
				return usageErrorf("deleting resource group %q deletes everything in it: pass --yes to confirm", opts.Name)
			}
			if runF != nil {
				return runF(opts)
			}
			return groupDeleteRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Name, "name", "n", "", "Resource group `NAME`")
	cmd.Flags().BoolVarP(&opts.Confirmed, "yes", "y", false, "Confirm the deletion")
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

func groupDeleteRun(opts *GroupDeleteOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteResourceGroup(opts.Ctx, sub, opts.Name); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Deleted resource group %s\n", cell(opts.Name))
	return nil
}
