//! The options of the console's `<select>`s, and the closure choices the
//! three cancelling forms share (the Cancelar/Reasignar modal and its page,
//! the bulk form, the automatic-cancellation rules).
//!
//! **A sub-category can be chosen without JavaScript.** With htmx, choosing
//! a category replaces the Subcategoría list with that category's
//! sub-categories. Before a category is chosen, or in a browser without
//! JavaScript, the list offers every sub-category grouped under its
//! category, so the page alone can record one; the server still refuses a
//! sub-category of another category than the one chosen.

use askama::Template;

use crate::db::{AgentOption, CampaignOption, CategoryOption, Store, StoreResult};

/// An `<option>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// An `<optgroup>` of options.
pub struct ChoiceGroup {
    pub label: String,
    pub choices: Vec<Choice>,
}

/// A campaign's active closure categories, as the forms offer them.
pub struct CampaignClosures {
    pub campaign: CampaignOption,
    pub categories: Vec<CategoryOption>,
}

/// The Subcategoría list: the chosen category's sub-categories, or every
/// category's, grouped, while none is chosen. Rendered inside the forms and
/// alone as the htmx answer to a change of category.
#[derive(Template, Default)]
#[template(path = "_subcategory_options.html")]
pub struct SubcategoryList {
    /// One `<optgroup>` per category (no category chosen), or the chosen
    /// category's options alone.
    pub grouped: bool,
    /// Only groups with options.
    pub groups: Vec<ChoiceGroup>,
}

impl SubcategoryList {
    /// The list for one campaign's `categories`, `category` chosen (an id,
    /// or anything else for none) and `selected` the sub-category chosen.
    pub fn of(categories: &[CategoryOption], category: &str, selected: &str) -> SubcategoryList {
        Self::build(
            categories.iter().map(|c| (c.name.clone(), c)),
            category,
            selected,
        )
    }

    /// The list over several campaigns' categories; each group names its
    /// campaign too, since two campaigns may have a category of one name.
    pub fn across(
        campaigns: &[CampaignClosures],
        category: &str,
        selected: &str,
    ) -> SubcategoryList {
        Self::build(
            campaigns.iter().flat_map(|c| {
                c.categories.iter().map(move |category| {
                    (format!("{} · {}", category.name, c.campaign.name), category)
                })
            }),
            category,
            selected,
        )
    }

    fn build<'a>(
        categories: impl Iterator<Item = (String, &'a CategoryOption)>,
        category: &str,
        selected: &str,
    ) -> SubcategoryList {
        let options = |c: &CategoryOption| -> Vec<Choice> {
            c.subcategories
                .iter()
                .map(|(id, name)| Choice {
                    value: id.to_string(),
                    label: name.clone(),
                    selected: id.to_string() == selected,
                })
                .collect()
        };
        let all: Vec<(String, &CategoryOption)> = categories.collect();
        if let Some((label, chosen)) = all.iter().find(|(_, c)| c.id.to_string() == category) {
            return SubcategoryList {
                grouped: false,
                groups: vec![ChoiceGroup {
                    label: label.clone(),
                    choices: options(chosen),
                }]
                .into_iter()
                .filter(|g| !g.choices.is_empty())
                .collect(),
            };
        }
        SubcategoryList {
            grouped: true,
            groups: all
                .into_iter()
                .filter(|(_, c)| !c.subcategories.is_empty())
                .map(|(label, c)| ChoiceGroup {
                    label,
                    choices: options(c),
                })
                .collect(),
        }
    }

    /// No sub-category to offer.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// An agent as the reassignment lists show them: name, presence and open
/// load ("Ana Ruiz · conectado · 3 abiertas").
pub fn agent_label(agent: &AgentOption) -> String {
    let load = match agent.open_count {
        0 => "sin abiertas".to_owned(),
        1 => "1 abierta".to_owned(),
        n => format!("{n} abiertas"),
    };
    let presence = if agent.connected {
        "conectado"
    } else {
        "desconectado"
    };
    format!("{} · {presence} · {load}", agent.name)
}

/// The active closure categories of `campaigns`, in their order.
pub async fn campaign_closures(
    store: &Store,
    campaigns: Vec<CampaignOption>,
) -> StoreResult<Vec<CampaignClosures>> {
    let mut closures = Vec::with_capacity(campaigns.len());
    for campaign in campaigns {
        let categories = store.closure_options(campaign.id).await?;
        closures.push(CampaignClosures {
            campaign,
            categories,
        });
    }
    Ok(closures)
}

/// The Categoría `<optgroup>`s, one per campaign with categories, `category`
/// chosen.
pub fn category_groups(campaigns: &[CampaignClosures], category: &str) -> Vec<ChoiceGroup> {
    campaigns
        .iter()
        .filter(|c| !c.categories.is_empty())
        .map(|c| ChoiceGroup {
            label: c.campaign.name.clone(),
            choices: c
                .categories
                .iter()
                .map(|option| Choice {
                    value: option.id.to_string(),
                    label: option.name.clone(),
                    selected: option.id.to_string() == category,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn category(name: &str, subs: &[&str]) -> CategoryOption {
        CategoryOption {
            id: Uuid::now_v7(),
            name: name.into(),
            subcategories: subs.iter().map(|s| (Uuid::now_v7(), (*s).into())).collect(),
        }
    }

    #[test]
    fn without_a_category_every_subcategory_is_offered_under_its_category() {
        let categories = [
            category("Venta", &["Contado", "Crédito"]),
            category("Sin respuesta", &[]),
            category("Duplicada", &["Mismo cliente"]),
        ];
        let list = SubcategoryList::of(&categories, "", "");
        assert!(list.grouped);
        let labels: Vec<_> = list.groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(
            labels,
            ["Venta", "Duplicada"],
            "a category without any is left out"
        );
        let html = list.render().unwrap();
        assert!(html.contains("<optgroup label=\"Venta\">"), "{html}");
        assert!(
            html.contains(">Mismo cliente</option></optgroup>"),
            "{html}"
        );
    }

    #[test]
    fn a_chosen_category_offers_only_its_own_and_keeps_the_selection() {
        let categories = [
            category("Venta", &["Contado", "Crédito"]),
            category("Duplicada", &["Mismo cliente"]),
        ];
        let chosen = categories[0].id.to_string();
        let credit = categories[0].subcategories[1].0.to_string();
        let list = SubcategoryList::of(&categories, &chosen, &credit);
        assert!(!list.grouped);
        let html = list.render().unwrap();
        assert!(!html.contains("optgroup"), "{html}");
        assert!(!html.contains("Mismo cliente"), "{html}");
        assert!(
            html.contains(&format!(
                "<option value=\"{credit}\" selected>Crédito</option>"
            )),
            "{html}"
        );
    }

    #[test]
    fn a_category_without_subcategories_says_so() {
        let categories = [category("Sin respuesta", &[])];
        let chosen = categories[0].id.to_string();
        let html = SubcategoryList::of(&categories, &chosen, "")
            .render()
            .unwrap();
        assert_eq!(html.trim(), "<option value=\"\">Sin subcategorías</option>");
    }
}
