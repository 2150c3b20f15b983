//! Administration inputs, parsed before anything is stored: names, time
//! zones, weekly schedules, passwords, and what the audit log records.
//!
//! Pure: every rule here is a function of its input, with Spanish messages
//! for the field each one belongs to.

use chrono::NaiveTime;
use chrono_tz::Tz;

use super::text::fold;

/// Longest name of a campaign, channel, category, sub-category, token or user.
/// Shortest password accepted for administrator roles.
pub const MIN_PASSWORD_CHARS: usize = 12;

pub const NAME_MAX_CHARS: usize = 100;
/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A display name: trimmed, inner whitespace collapsed, 1 to
/// [`NAME_MAX_CHARS`] characters, no control characters. `key` is the folded
/// form the uniqueness rules compare (case and accents ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    text: String,
    key: String,
}

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong(usize),
    Control,
}

impl NameError {
    /// The Spanish message shown next to the field.
    pub fn message(self) -> String {
        match self {
            NameError::Empty => "Escribe un nombre.".into(),
            NameError::TooLong(chars) => {
                format!("El nombre admite hasta {NAME_MAX_CHARS} caracteres (tiene {chars}).")
            }
            NameError::Control => "El nombre contiene caracteres no permitidos.".into(),
        }
    }
}

impl Name {
    pub fn parse(raw: &str) -> Result<Name, NameError> {
        if raw.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return Err(NameError::Control);
        }
        let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let chars = text.chars().count();
        if chars == 0 {
            return Err(NameError::Empty);
        }
        if chars > NAME_MAX_CHARS {
            return Err(NameError::TooLong(chars));
        }
        let key = fold(&text);
        Ok(Name { text, key })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The case- and accent-folded form stored in `name_key`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The minutes without activity after which a campaign's open conversation
/// is stuck ("rezagada"): at least one, at most a week (the database
/// checks the same bounds).
pub const STALE_AFTER_MINUTES: std::ops::RangeInclusive<i64> = 1..=10_080;

/// Reads the Rezagadas threshold a person typed, in whole minutes.
pub fn parse_stale_after(raw: &str) -> Result<i64, &'static str> {
    match raw.trim().parse::<i64>() {
        Ok(minutes) if STALE_AFTER_MINUTES.contains(&minutes) => Ok(minutes),
        _ => Err("Escribe los minutos como un número entero entre 1 y 10080 (una semana)."),
    }
}

/// A time zone of the IANA database (`America/Mexico_City`).
pub fn parse_timezone(raw: &str) -> Option<Tz> {
    raw.trim().parse::<Tz>().ok()
}

/// Spanish weekday names, 0 = Monday.
pub const WEEKDAYS: [&str; 7] = [
    "Lunes",
    "Martes",
    "Miércoles",
    "Jueves",
    "Viernes",
    "Sábado",
    "Domingo",
];

/// How a weekday is set in the schedule editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayMode {
    /// No entry: closed all day.
    Closed,
    /// From `opens` to `closes` (the next day when `closes` < `opens`).
    Hours,
    /// Open 24 hours (stored as 00:00–00:00, which the schedule rule reads
    /// as the whole day).
    AllDay,
}

impl DayMode {
    pub fn parse(raw: &str) -> Option<DayMode> {
        match raw {
            "cerrado" => Some(DayMode::Closed),
            "horario" => Some(DayMode::Hours),
            "24h" => Some(DayMode::AllDay),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DayMode::Closed => "cerrado",
            DayMode::Hours => "horario",
            DayMode::AllDay => "24h",
        }
    }
}

/// One weekday as typed in the editor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayInput {
    pub mode: String,
    pub opens: String,
    pub closes: String,
}

/// One open weekday, valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayHours {
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
}

impl DayHours {
    pub fn opens_text(&self) -> String {
        self.opens.format("%H:%M").to_string()
    }

    pub fn closes_text(&self) -> String {
        self.closes.format("%H:%M").to_string()
    }

    pub fn is_all_day(&self) -> bool {
        self.opens == self.closes
    }

    /// "Lun 08:00–20:00", "Vie 22:00–02:00 (+1 día)", "Dom 24 horas".
    pub fn describe(&self) -> String {
        let day: String = WEEKDAYS[self.weekday as usize].chars().take(3).collect();
        if self.is_all_day() {
            format!("{day} 24 horas")
        } else if self.closes < self.opens {
            format!(
                "{day} {}–{} (+1 día)",
                self.opens_text(),
                self.closes_text()
            )
        } else {
            format!("{day} {}–{}", self.opens_text(), self.closes_text())
        }
    }
}

/// Summarises a whole schedule for the audit log.
pub fn describe_schedule(days: &[DayHours]) -> String {
    if days.is_empty() {
        "cerrado toda la semana".into()
    } else {
        days.iter()
            .map(DayHours::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A field error of the schedule editor: (weekday, field, message), where
/// field is `modo`, `abre` or `cierra`.
pub type ScheduleError = (usize, &'static str, String);

/// A strict `HH:MM` 24-hour time (`25:00`, `8:5` and `08:00:00` are refused).
pub fn parse_time(raw: &str) -> Option<NaiveTime> {
    let raw = raw.trim();
    let (h, m) = raw.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !raw.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// Parses the seven weekdays of the editor.
pub fn parse_schedule(days: &[DayInput; 7]) -> Result<Vec<DayHours>, Vec<ScheduleError>> {
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (weekday, day) in days.iter().enumerate() {
        match DayMode::parse(day.mode.trim()) {
            None => errors.push((weekday, "modo", "Elige cerrado, horario o 24 horas.".into())),
            Some(DayMode::Closed) => {}
            Some(DayMode::AllDay) => valid.push(DayHours {
                weekday: weekday as u32,
                opens: NaiveTime::MIN,
                closes: NaiveTime::MIN,
            }),
            Some(DayMode::Hours) => {
                let opens = parse_time(&day.opens);
                let closes = parse_time(&day.closes);
                if opens.is_none() {
                    errors.push((weekday, "abre", time_message(&day.opens)));
                }
                if closes.is_none() {
                    errors.push((weekday, "cierra", time_message(&day.closes)));
                }
                if let (Some(opens), Some(closes)) = (opens, closes) {
                    if opens == closes {
                        errors.push((
                            weekday,
                            "cierra",
                            "La hora de cierre debe ser distinta de la de apertura (para abrir todo el día elige «24 horas»)."
                                .into(),
                        ));
                    } else {
                        valid.push(DayHours {
                            weekday: weekday as u32,
                            opens,
                            closes,
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

fn time_message(raw: &str) -> String {
    if raw.trim().is_empty() {
        "Escribe la hora (HH:MM).".into()
    } else {
        "Hora no válida: usa el formato de 24 horas HH:MM, de 00:00 a 23:59.".into()
    }
}

/// Passwords too common to accept, compared case-insensitively. Short on
/// purpose: the length rule does most of the work; these are the 12+
/// character passwords people still pick first.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456789abc",
    "000000000000",
    "111111111111",
    "123123123123",
    "qwertyuiop12",
    "qwerty123456",
    "qwertyuiopasdf",
    "asdfghjkl123",
    "abcdefghijkl",
    "abc123abc123",
    "password1234",
    "password123!",
    "passw0rd1234",
    "passwordpassword",
    "iloveyou1234",
    "welcome12345",
    "contraseña123",
    "contrasena123",
    "contraseña1234",
    "contrasena1234",
    "micontraseña1",
    "bienvenido123",
    "bienvenido1234",
    "administrador",
    "administrador1",
    "administrador123",
    "superadmin123",
    "admin1234567",
    "adminadmin123",
    "mexico123456",
    "relevo123456",
    "relevo2026!!",
    "teamoteamo12",
];

/// Why a password was refused (shown next to the field).
pub fn check_password(password: &str, confirmation: &str, email: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars == 0 {
        return Err("Escribe una contraseña.".into());
    }
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "La contraseña debe tener al menos {} caracteres (tiene {chars}).",
            MIN_PASSWORD_CHARS
        ));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(format!(
            "La contraseña admite hasta {PASSWORD_MAX_CHARS} caracteres."
        ));
    }
    let lower = password.to_lowercase();
    let first = lower.chars().next();
    if COMMON_PASSWORDS.contains(&lower.as_str())
        || lower.chars().all(|c| Some(c) == first)
        || (!email.is_empty() && lower.contains(&email.to_lowercase()))
    {
        return Err("Esa contraseña es demasiado común o fácil de adivinar; elige otra.".into());
    }
    if password != confirmation {
        return Err("La confirmación no coincide con la contraseña.".into());
    }
    Ok(())
}

stored_enum!(
    /// What an audit row is about.
    AuditObject {
        User => "user", "Usuario",
        Campaign => "campaign", "Campaña",
        Channel => "channel", "Canal",
        IntegrationToken => "integration_token", "Token de integración",
        Category => "category", "Categoría",
        Subcategory => "subcategory", "Subcategoría",
        BulkJob => "bulk_job", "Acción en lote",
        AutoCancelRule => "auto_cancel_rule", "Regla de cancelación automática",
        Webhook => "webhook", "Webhook",
    }
);

stored_enum!(
    /// What an administrative change did.
    AuditAction {
        UserCreate => "user.create", "Usuario creado",
        UserUpdate => "user.update", "Usuario editado",
        UserPassword => "user.password", "Contraseña establecida",
        UserDeactivate => "user.deactivate", "Usuario desactivado",
        UserReactivate => "user.reactivate", "Usuario reactivado",
        UserSessions => "user.sessions", "Sesiones cerradas",
        MemberAdd => "member.add", "Asignado a campaña",
        MemberRemove => "member.remove", "Quitado de campaña",
        CampaignCreate => "campaign.create", "Campaña creada",
        CampaignUpdate => "campaign.update", "Campaña editada",
        CampaignDeactivate => "campaign.deactivate", "Campaña desactivada",
        CampaignReactivate => "campaign.reactivate", "Campaña reactivada",
        ScheduleUpdate => "campaign.schedule", "Horario modificado",
        ChannelCreate => "channel.create", "Canal creado",
        ChannelRotate => "channel.rotate", "Token de canal rotado",
        ChannelDeactivate => "channel.deactivate", "Canal desactivado",
        ChannelReactivate => "channel.reactivate", "Canal reactivado",
        TokenCreate => "token.create", "Token de integración creado",
        TokenRevoke => "token.revoke", "Token de integración revocado",
        CategoryCreate => "category.create", "Categoría creada",
        CategoryRename => "category.rename", "Categoría renombrada",
        CategoryMove => "category.move", "Categoría reordenada",
        CategoryDeactivate => "category.deactivate", "Categoría desactivada",
        CategoryReactivate => "category.reactivate", "Categoría reactivada",
        SubcategoryCreate => "subcategory.create", "Subcategoría creada",
        SubcategoryRename => "subcategory.rename", "Subcategoría renombrada",
        SubcategoryMove => "subcategory.move", "Subcategoría reordenada",
        SubcategoryDeactivate => "subcategory.deactivate", "Subcategoría desactivada",
        SubcategoryReactivate => "subcategory.reactivate", "Subcategoría reactivada",
        BulkStop => "bulk.stop", "Acción en lote detenida",
        RuleCreate => "auto_cancel_rule.create", "Regla automática creada",
        RuleUpdate => "auto_cancel_rule.update", "Regla automática editada",
        RuleDeactivate => "auto_cancel_rule.deactivate", "Regla automática desactivada",
        RuleReactivate => "auto_cancel_rule.reactivate", "Regla automática reactivada",
        RuleDelete => "auto_cancel_rule.delete", "Regla automática eliminada",
        WebhookCreate => "webhook.create", "Webhook creado",
        WebhookUpdate => "webhook.update", "Webhook editado",
        WebhookRotate => "webhook.rotate", "Secreto de webhook renovado",
        WebhookDelete => "webhook.delete", "Webhook eliminado",
    }
);

impl AuditAction {
    /// The kind of object this action changes.
    pub fn object(self) -> AuditObject {
        let stored = self.as_str();
        match stored.split('.').next().unwrap_or_default() {
            "bulk" => AuditObject::BulkJob,
            "user" | "member" => AuditObject::User,
            "campaign" => AuditObject::Campaign,
            "channel" => AuditObject::Channel,
            "token" => AuditObject::IntegrationToken,
            "category" => AuditObject::Category,
            "auto_cancel_rule" => AuditObject::AutoCancelRule,
            "webhook" => AuditObject::Webhook,
            _ => AuditObject::Subcategory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_collapsed_and_folded() {
        let name = Name::parse("  Ventas   HOGAR ").unwrap();
        assert_eq!(name.as_str(), "Ventas HOGAR");
        assert_eq!(name.key(), "ventas hogar");
        assert_eq!(
            Name::parse("Soporte Técnico").unwrap().key(),
            Name::parse("soporte tecnico").unwrap().key()
        );
    }

    #[test]
    fn the_stale_threshold_is_whole_minutes_up_to_a_week() {
        assert_eq!(parse_stale_after(" 45 "), Ok(45));
        assert_eq!(parse_stale_after("10080"), Ok(10_080));
        for bad in ["0", "-5", "10081", "1.5", "", "treinta"] {
            assert!(parse_stale_after(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_long_and_control_names_are_refused() {
        assert_eq!(Name::parse("   "), Err(NameError::Empty));
        assert_eq!(Name::parse(&"a".repeat(101)), Err(NameError::TooLong(101)));
        assert!(Name::parse(&"ñ".repeat(100)).is_ok());
        assert_eq!(Name::parse("a\u{0}b"), Err(NameError::Control));
    }

    #[test]
    fn times_are_strict_24_hour_hh_mm() {
        assert!(parse_time("08:00").is_some());
        assert!(parse_time("23:59").is_some());
        for bad in [
            "25:00", "24:00", "8:00", "08:60", "0800", "08:00:00", "ab:cd", "",
        ] {
            assert!(parse_time(bad).is_none(), "{bad}");
        }
    }

    fn day(mode: &str, opens: &str, closes: &str) -> DayInput {
        DayInput {
            mode: mode.into(),
            opens: opens.into(),
            closes: closes.into(),
        }
    }

    #[test]
    fn a_schedule_may_cross_midnight_but_not_close_when_it_opens() {
        let mut days: [DayInput; 7] = Default::default();
        for d in days.iter_mut() {
            *d = day("cerrado", "", "");
        }
        days[4] = day("horario", "22:00", "02:00");
        days[6] = day("24h", "", "");
        let parsed = parse_schedule(&days).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].describe(), "Vie 22:00–02:00 (+1 día)");
        assert_eq!(parsed[1].describe(), "Dom 24 horas");

        days[0] = day("horario", "09:00", "09:00");
        days[1] = day("horario", "25:00", "18:00");
        days[2] = day("abierto", "", "");
        let errors = parse_schedule(&days).unwrap_err();
        let fields: Vec<(usize, &str)> = errors.iter().map(|(d, f, _)| (*d, *f)).collect();
        assert_eq!(fields, vec![(0, "cierra"), (1, "abre"), (2, "modo")]);
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        assert!(check_password("corto", "corto", "a@b.mx").is_err());
        assert!(check_password("Password1234", "Password1234", "a@b.mx").is_err());
        assert!(check_password("aaaaaaaaaaaaaa", "aaaaaaaaaaaaaa", "a@b.mx").is_err());
        assert!(check_password("ana@relevo.mx1", "ana@relevo.mx1", "ana@relevo.mx").is_err());
        assert!(check_password("caballo-bateria-grapa", "otra", "a@b.mx").is_err());
        assert!(check_password("caballo-bateria-grapa", "caballo-bateria-grapa", "a@b.mx").is_ok());
    }

    #[test]
    fn every_action_names_its_object() {
        assert_eq!(AuditAction::MemberAdd.object(), AuditObject::User);
        assert_eq!(AuditAction::ScheduleUpdate.object(), AuditObject::Campaign);
        assert_eq!(
            AuditAction::TokenRevoke.object(),
            AuditObject::IntegrationToken
        );
        assert_eq!(
            AuditAction::SubcategoryMove.object(),
            AuditObject::Subcategory
        );
        assert_eq!(AuditAction::BulkStop.object(), AuditObject::BulkJob);
        assert_eq!(
            AuditAction::RuleDelete.object(),
            AuditObject::AutoCancelRule
        );
    }
}
