//! Choosing the route of one request: a named model directly, `auto` / `auto:POLICY` through the
//! learned router when it is configured (stepping aside to `routing.default` when it cannot decide),
//! and `routing.default` when it is not.

use std::ops::Deref;
use std::sync::Arc;

use super::{Gateway, Route};
use crate::config::is_auto;
use crate::error::ApiError;
use crate::router::{Ask, Hints, Outcome};

/// The route taken, and what the router said about it.
pub struct Routed {
    pub route: Arc<Route>,
    /// `x-cherrypick-route`: the policy and the candidates' utilities, or why the router stepped aside.
    pub summary: Option<String>,
    /// The prompt's embedding, when the router computed one (the semantic cache reuses it).
    pub embedding: Option<Arc<[f32]>>,
    /// For `auto`: the router's next best candidates, tried in order instead of the chosen
    /// model's configured fallbacks.
    pub alternatives: Option<Arc<[String]>>,
}

impl Routed {
    pub fn direct(route: Arc<Route>) -> Self {
        Self { route, summary: None, embedding: None, alternatives: None }
    }

    /// The models to try after this one fails.
    pub fn fallbacks(&self) -> Arc<[String]> {
        self.alternatives.clone().unwrap_or_else(|| self.route.fallbacks.clone())
    }
}

impl Deref for Routed {
    type Target = Route;

    fn deref(&self) -> &Route {
        &self.route
    }
}

impl Gateway {
    /// `text` gives the text the router reads and an estimate of the prompt's tokens; it is only
    /// called when the router runs.
    pub(super) async fn route(
        &self,
        model: &str,
        hints: &Hints,
        text: impl FnOnce(usize) -> (String, u64),
    ) -> Result<Routed, ApiError> {
        let Some(router) = self.router.as_deref().filter(|_| is_auto(model)) else {
            return Ok(Routed::direct(self.routes.resolve(model)?));
        };
        let policy = model.strip_prefix("auto:");
        let weights = router.weights(policy).ok_or_else(|| ApiError::model_not_found(model))?;
        if let Some(names) = &hints.candidates {
            for name in names {
                self.routes.resolve(name).map_err(|_| {
                    ApiError::bad_request(format!("x-cherrypick-candidates: no model named `{name}`"))
                        .with_param("x-cherrypick-candidates")
                })?;
            }
        }
        let (text, prompt_tokens) = text(router.max_tokens);
        let policy_name = policy.unwrap_or("default");
        match router.decide(Ask { text, prompt_tokens, policy: policy_name, weights, hints }).await {
            Outcome::Routed(decision) => Ok(Routed {
                route: self.routes.resolve(&decision.model)?,
                summary: Some(decision.summary),
                embedding: Some(decision.embedding),
                alternatives: Some(decision.alternatives.iter().map(|m| m.to_string()).collect()),
            }),
            Outcome::SteppedAside(reason) => {
                // A request that restricted the candidates keeps to them.
                let fallback = hints.candidates.as_ref().and_then(|names| names.first()).map_or("auto", String::as_str);
                Ok(Routed {
                    route: self.routes.resolve(fallback)?,
                    summary: Some(format!("stepped-aside={reason}")),
                    embedding: None,
                    alternatives: None,
                })
            }
        }
    }
}
