package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdRole(f *Factory) *cobra.Command {
	cmd := newGroup("role", "Manage Azure role assignments (RBAC)")
	cmd.Long = `Assign Azure built-in roles at a subscription, resource group or resource
scope. An assignment applies at its scope and below it. Assigning and removing
roles needs Owner or User Access Administrator at the scope.

Roles:
` + wrapList(roleNames(), "  ", 78)
	cmd.AddCommand(
		newCmdRoleAssign(f, nil),
		newCmdRoleList(f, nil),
		newCmdRoleRemove(f, nil),
	)
	return cmd
}

// roleNames lists the built-in roles' names.
func roleNames() []string {
	names := make([]string, len(keyhold.BuiltinRoles))
	for i, r := range keyhold.BuiltinRoles {
		names[i] = r.Name
	}
	return names
}

// RoleAssignOptions are the parsed arguments of "keyhold role assign".
type RoleAssignOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format

	Role     string // a built-in role's name or id
	Assignee string // a principal's object id
	Scope    string
}

func newCmdRoleAssign(f *Factory, runF func(*RoleAssignOptions) error) *cobra.Command {
	opts := &RoleAssignOptions{IO: f.IO, Client: armServices(f)}
	cmd := &cobra.Command{
		Use:   "assign --role ROLE --assignee OBJECT-ID --scope SCOPE",
		Short: "Give a principal a role at a scope",
		Example: `  keyhold role assign --role "Key Vault Crypto Service Encryption User" \
      --assignee 00000000-0000-0000-0000-000000000000 \
      --scope /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/KV
  keyhold role assign --role Reader --assignee OBJECT-ID --scope /subscriptions/SUB/resourceGroups/RG`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "role", "assignee", "scope"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return roleAssignRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Role, "role", "", "Built-in `ROLE`, by name or id")
	cmd.Flags().StringVar(&opts.Assignee, "assignee", "", "Object `ID` of the user, service principal or managed identity")
	cmd.Flags().StringVar(&opts.Scope, "scope", "", "`SCOPE`: /subscriptions/ID, …/resourceGroups/NAME or a resource id")
	return cmd
}

// resolveRole finds a role definition by id or name through the server.
func resolveRole(ctx context.Context, c keyhold.ARMClient, scope, role string) (*keyhold.RoleDefinition, error) {
	if _, err := uuid.Parse(role); err == nil {
		return c.RoleDefinition(ctx, scope, role)
	}
	ds, err := c.RoleDefinitions(ctx, scope, role)
	if err != nil {
		return nil, err
	}
	if len(ds) != 1 {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "no role called %q: use one of %s", role, strings.Join(roleNames(), ", "))
	}
	return ds[0], nil
}

func roleAssignRun(opts *RoleAssignOptions) error {
	if _, err := keyhold.ParseScope(opts.Scope); err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	role, err := resolveRole(opts.Ctx, c, opts.Scope, opts.Role)
	if err != nil {
		return err
	}
	a := &keyhold.RoleAssignment{Scope: opts.Scope, RoleDefinitionID: role.ID, PrincipalID: opts.Assignee}
	if err := c.CreateRoleAssignment(opts.Ctx, a); err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, a)
	}
	if opts.Format == FormatID {
		return printIDs(opts.IO.Out, a.ID)
	}
	fmt.Fprintf(opts.IO.Out, "Gave %s %s the role %q at %s (assignment %s)\n", cell(a.PrincipalType), cell(a.PrincipalID), role.Name, cell(a.Scope), cell(a.ID))
	return nil
}

// RoleListOptions are the parsed arguments of "keyhold role list".
type RoleListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
	// LoginSubscription gives the default scope, the login's subscription.
	LoginSubscription func() (string, error)

	Scope    string
	Assignee string
	AtScope  bool
}

func newCmdRoleList(f *Factory, runF func(*RoleListOptions) error) *cobra.Command {
	opts := &RoleListOptions{IO: f.IO, Client: armServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:     "list [--scope SCOPE] [--assignee OBJECT-ID] [--at-scope]",
		Aliases: []string{"ls"},
		Short:   "List role assignments at, above and below a scope",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return roleListRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Scope, "scope", "", "`SCOPE` (default: the login's subscription)")
	cmd.Flags().StringVar(&opts.Assignee, "assignee", "", "Only this principal's (object `ID`) assignments")
	cmd.Flags().BoolVar(&opts.AtScope, "at-scope", false, "Only the assignments that apply at the scope (at it or above it)")
	return cmd
}

func roleListRun(opts *RoleListOptions) error {
	scope := opts.Scope
	if scope == "" {
		sub, err := opts.LoginSubscription()
		if err != nil {
			return err
		}
		scope = "/subscriptions/" + sub
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	as, err := c.ListRoleAssignments(opts.Ctx, scope, keyhold.AssignmentFilter{PrincipalID: opts.Assignee, AtScope: opts.AtScope})
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if as == nil {
			as = []*keyhold.RoleAssignment{}
		}
		return printJSON(opts.IO.Out, as)
	}
	if opts.Format == FormatID {
		for _, a := range as {
			fmt.Fprintln(opts.IO.Out, a.ID)
		}
		return nil
	}
	if len(as) == 0 {
		fmt.Fprintln(opts.IO.Out, "No role assignments")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "ASSIGNMENT", "ROLE", "PRINCIPAL", "TYPE", "SCOPE")
	for _, a := range as {
		role := a.RoleDefinitionID
		if r, ok := keyhold.FindRoleDefinition(role); ok {
			role = r.Name
		}
		row(tw, a.ID, role, a.PrincipalID, a.PrincipalType, a.Scope)
	}
	return tw.Flush()
}

// RoleRemoveOptions are the parsed arguments of "keyhold role remove".
type RoleRemoveOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)

	ID    string
	Scope string
}

func newCmdRoleRemove(f *Factory, runF func(*RoleRemoveOptions) error) *cobra.Command {
	opts := &RoleRemoveOptions{IO: f.IO, Client: armServices(f)}
	cmd := &cobra.Command{
		Use:     "remove ASSIGNMENT-ID --scope SCOPE",
		Aliases: []string{"rm"},
		Short:   "Remove a role assignment",
		Args:    exactArgs("assignment-id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.ID = cmd.Context(), args[0]
			if err := requireFlags(cmd, "scope"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return roleRemoveRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Scope, "scope", "", "`SCOPE` of the assignment, as role list shows it")
	return cmd
}

func roleRemoveRun(opts *RoleRemoveOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if _, err := c.DeleteRoleAssignment(opts.Ctx, opts.Scope, opts.ID); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Removed role assignment %s\n", cell(opts.ID))
	return nil
}
