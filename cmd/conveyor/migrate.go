package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/conveyor-run/conveyor/store/postgres"
)

func migrateCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded schema migrations to a PostgreSQL database (serve does this too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envDefaults(cmd.Flags()); err != nil {
				return err
			}
			if url == "" {
				return errors.New("--database-url (or CONVEYOR_DATABASE_URL) is required")
			}
			if err := postgres.Migrate(context.Background(), url); err != nil {
				return err
			}
			fmt.Println("database is up to date")
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "database-url", "", "PostgreSQL URL [CONVEYOR_DATABASE_URL]")
	return cmd
}
