//! Projections of McpServer and Agent resources, for workers: the MCP servers they may start
//! (with their discovered tools) and the scopes of each Agent.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// An McpServer as projected by the operator. `spec` holds Secret references, never values.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct McpServerRow {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub spec: Value,
    /// The discovered tools (name, description, inputSchema, outputSchema).
    pub tools: Value,
    pub ready: bool,
    pub updated_at: DateTime<Utc>,
}

/// An Agent as projected by the operator.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AgentRow {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub spec: Value,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Inserts or replaces an McpServer's projection.
    pub async fn upsert_mcp_server(
        &self,
        namespace: &str,
        name: &str,
        generation: i64,
        spec: &Value,
        tools: &Value,
        ready: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query(
            "INSERT INTO mcp_servers (namespace, name, generation, spec, tools, ready) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (namespace, name) DO UPDATE SET generation = EXCLUDED.generation, \
                 spec = EXCLUDED.spec, tools = EXCLUDED.tools, ready = EXCLUDED.ready, \
                 updated_at = now()",
        )
        .bind(namespace)
        .bind(name)
        .bind(generation)
        .bind(spec)
        .bind(tools)
        .bind(ready)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an McpServer's projection (idempotent).
    pub async fn delete_mcp_server(&self, namespace: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query("DELETE FROM mcp_servers WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every projected McpServer.
    pub async fn mcp_servers(&self) -> Result<Vec<McpServerRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT namespace, name, generation, spec, tools, ready, updated_at FROM mcp_servers \
             ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Inserts or replaces an Agent's projection.
    pub async fn upsert_agent(
        &self,
        namespace: &str,
        name: &str,
        generation: i64,
        spec: &Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query(
            "INSERT INTO agents (namespace, name, generation, spec) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, name) DO UPDATE SET generation = EXCLUDED.generation, \
                 spec = EXCLUDED.spec, updated_at = now()",
        )
        .bind(namespace)
        .bind(name)
        .bind(generation)
        .bind(spec)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an Agent's projection (idempotent).
    pub async fn delete_agent(&self, namespace: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query("DELETE FROM agents WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One projected Agent, if it exists (and is valid: invalid Agents are not projected).
    pub async fn agent(&self, namespace: &str, name: &str) -> Result<Option<AgentRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT namespace, name, generation, spec, updated_at FROM agents \
             WHERE namespace = $1 AND name = $2",
        )
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every projected Agent.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT namespace, name, generation, spec, updated_at FROM agents ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
