//! Templates and their versions.

use sqlx::Row;

use super::{Store, StoreResult, rows};
use toolshed_infra::Template;

/// The template query, with its active-developer count, followed by `$tail`.
macro_rules! select_templates {
    ($tail:literal) => {
        concat!(
            "SELECT t.*, (SELECT COUNT(DISTINCT owner_id) FROM workspaces w WHERE w.template_id = t.id AND w.deleted = 0)",
            " AS active_developers FROM templates t ",
            $tail
        )
    };
}

/// A template version as stored.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    /// The template it belongs to.
    pub template_id: String,
    /// The template's organization.
    pub organization_id: String,
    /// The manifest, as JSON.
    pub manifest: String,
}

/// What `push_template` added.
#[derive(Debug, Clone)]
pub struct PushedVersion {
    /// The template.
    pub template_id: String,
    /// The new version.
    pub version_id: String,
    /// Its number, counting from 1.
    pub number: i64,
}

/// A template version to add.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// The organization that owns the template.
    pub organization_id: &'a str,
    /// The template's unique name.
    pub name: &'a str,
    /// A friendlier name.
    pub display_name: &'a str,
    /// What it provides.
    pub description: &'a str,
    /// Whether starts move workspaces to the active version.
    pub require_active_version: bool,
    /// The manifest, as JSON.
    pub manifest: &'a str,
    /// When, in ms since the Unix epoch.
    pub now: u64,
}

impl Store {
    /// The templates of `organization_id`.
    pub async fn templates(&self, organization_id: &str) -> StoreResult<Vec<Template>> {
        let rows = self
            .retry(|| async {
                Ok(sqlx::query(select_templates!("WHERE t.organization_id = $1 ORDER BY t.name"))
                    .bind(organization_id)
                    .fetch_all(self.pool())
                    .await?)
            })
            .await?;
        rows.iter().map(rows::template).collect()
    }

    /// Every template, of every organization (for the command line).
    pub async fn all_templates(&self) -> StoreResult<Vec<Template>> {
        let rows = self.retry(|| async { Ok(sqlx::query(select_templates!("ORDER BY t.name")).fetch_all(self.pool()).await?) }).await?;
        rows.iter().map(rows::template).collect()
    }

    /// A template by id, of any organization.
    pub async fn template(&self, id: &str) -> StoreResult<Option<Template>> {
        let row = self
            .retry(|| async { Ok(sqlx::query(select_templates!("WHERE t.id = $1")).bind(id).fetch_optional(self.pool()).await?) })
            .await?;
        row.as_ref().map(rows::template).transpose()
    }

    /// Whether a template makes starts move to its active version.
    pub async fn requires_active_version(&self, template_id: &str) -> StoreResult<bool> {
        let row = self
            .retry(|| async {
                Ok(sqlx::query("SELECT require_active_version FROM templates WHERE id = $1").bind(template_id).fetch_optional(self.pool()).await?)
            })
            .await?;
        row.map_or(Ok(false), |r| rows::flag(&r, "require_active_version"))
    }

    /// A version with its template's organization.
    pub async fn version(&self, version_id: &str) -> StoreResult<Option<VersionRecord>> {
        let row = self
            .retry(|| async {
                Ok(sqlx::query(
                    "SELECT v.template_id, v.manifest, t.organization_id FROM template_versions v
                     JOIN templates t ON t.id = v.template_id WHERE v.id = $1",
                )
                .bind(version_id)
                .fetch_optional(self.pool())
                .await?)
            })
            .await?;
        row.map(|r| Ok(VersionRecord { template_id: r.try_get("template_id")?, organization_id: r.try_get("organization_id")?, manifest: r.try_get("manifest")? }))
            .transpose()
    }

    /// Adds a version of template `new.name` (creating the template) and
    /// makes it active.
    pub async fn push_template(&self, new: &NewVersion<'_>) -> StoreResult<PushedVersion> {
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            let existing: Option<String> =
                sqlx::query("SELECT id FROM templates WHERE name = $1").bind(new.name).fetch_optional(&mut *tx).await?.map(|r| r.try_get("id")).transpose()?;
            let template_id = existing.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let version_id = uuid::Uuid::new_v4().to_string();
            let number: i64 = sqlx::query("SELECT COALESCE(MAX(number), 0) + 1 AS next FROM template_versions WHERE template_id = $1")
                .bind(&template_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("next")?;
            sqlx::query("INSERT INTO template_versions (id, template_id, number, manifest, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&version_id)
                .bind(&template_id)
                .bind(number)
                .bind(new.manifest)
                .bind(new.now as i64)
                .execute(&mut *tx)
                .await?;
            let require = i64::from(new.require_active_version);
            if existing.is_some() {
                sqlx::query(
                    "UPDATE templates SET active_version_id = $2, display_name = $3, description = $4, require_active_version = $5 WHERE id = $1",
                )
                .bind(&template_id)
                .bind(&version_id)
                .bind(new.display_name)
                .bind(new.description)
                .bind(require)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "INSERT INTO templates (id, name, display_name, description, organization_id, active_version_id, require_active_version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&template_id)
                .bind(new.name)
                .bind(new.display_name)
                .bind(new.description)
                .bind(new.organization_id)
                .bind(&version_id)
                .bind(require)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(PushedVersion { template_id, version_id, number })
        })
        .await
    }
}
