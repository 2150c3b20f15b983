//! Customer message texts for `ingest` and `events`: 20 to 400 characters
//! of Spanish-like chat (accents, ñ, ¿¡, digits and now and then an emoji),
//! the same pool on every run, so the figures include storing transcripts
//! of the lengths customers write instead of one short fixed sentence.

/// Texts in the pool; a request picks one by its worker and iteration.
pub const POOL: usize = 4096;
pub const MIN_CHARS: usize = 20;
pub const MAX_CHARS: usize = 400;

const WORDS: &[&str] = &[
    "hola",
    "buenas",
    "tardes",
    "quisiera",
    "saber",
    "el",
    "estado",
    "de",
    "mi",
    "pedido",
    "número",
    "ya",
    "pasó",
    "una",
    "semana",
    "y",
    "no",
    "llega",
    "me",
    "cobraron",
    "dos",
    "veces",
    "la",
    "tarjeta",
    "por",
    "favor",
    "ayúdenme",
    "con",
    "aclaración",
    "gracias",
    "necesito",
    "cambiar",
    "dirección",
    "envío",
    "a",
    "calle",
    "Reforma",
    "colonia",
    "Juárez",
    "mañana",
    "después",
    "las",
    "cinco",
    "podrían",
    "llamarme",
    "al",
    "teléfono",
    "factura",
    "devolución",
    "producto",
    "llegó",
    "dañado",
    "caja",
    "abierta",
    "garantía",
    "técnico",
    "cuándo",
    "dónde",
    "sucursal",
    "más",
    "cercana",
    "también",
    "quería",
    "preguntar",
    "promoción",
    "descuento",
    "gratis",
    "compré",
    "ayer",
    "en",
    "línea",
    "código",
    "confirmación",
    "nadie",
    "contesta",
    "sigo",
    "esperando",
    "respuesta",
    "urgente",
    "niño",
    "año",
    "señorita",
    "está",
    "aquí",
    "qué",
    "que",
    "es",
    "lo",
    "se",
    "sí",
    "claro",
    "perfecto",
    "pago",
    "referencia",
    "OXXO",
    "transferencia",
    "cuenta",
    "contraseña",
    "aplicación",
    "cancelar",
    "reembolso",
    "días",
    "hábiles",
    "horario",
    "atención",
    "paquetería",
    "guía",
    "rastreo",
    "entrega",
    "domicilio",
    "Monterrey",
    "Guadalajara",
    "Ciudad",
    "México",
    "José",
    "María",
    "Ramírez",
    "Hernández",
];
const EMOJI: &[&str] = &["🙏", "😊", "😡", "👍", "📦", "🙂", "😅", "🤔"];
const ENDS: &[&str] = &[".", "?", "!", ".", "...", "."];

/// SplitMix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Text number `n` of the pool: between [`MIN_CHARS`] and [`MAX_CHARS`]
/// characters, in sentences of 3 to 14 words.
pub fn text(n: u64) -> String {
    let mut rng = Rng(n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    let length = MIN_CHARS + rng.below(MAX_CHARS - MIN_CHARS + 1);
    let mut out = String::new();
    let mut chars = 0;
    while chars < length {
        let question = rng.below(4) == 0;
        if question {
            out.push('¿');
        }
        let words = 3 + rng.below(12);
        for w in 0..words {
            let word = match rng.below(40) {
                0 => format!("{}", 1000 + rng.below(99_000)),
                1 => EMOJI[rng.below(EMOJI.len())].to_owned(),
                _ => WORDS[rng.below(WORDS.len())].to_owned(),
            };
            if w == 0 {
                let mut letters = word.chars();
                if let Some(first) = letters.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(letters.as_str());
                }
            } else {
                out.push_str(&word);
            }
            if w + 1 < words {
                out.push(if rng.below(9) == 0 { ',' } else { ' ' });
                if out.ends_with(',') {
                    out.push(' ');
                }
            }
        }
        out.push_str(if question {
            "?"
        } else {
            ENDS[rng.below(ENDS.len())]
        });
        out.push(' ');
        chars = out.chars().count();
    }
    let mut text: String = out.chars().take(length).collect();
    // A cut after a space or a comma ends the text with a full stop instead.
    if text.ends_with([' ', ',']) {
        text.pop();
        text.push('.');
    }
    text
}

/// The pool: [`POOL`] texts.
pub fn pool() -> Vec<String> {
    let pool: Vec<String> = (0..POOL as u64).map(text).collect();
    for t in &pool {
        let chars = t.chars().count();
        assert!(
            (MIN_CHARS..=MAX_CHARS).contains(&chars) && !t.chars().any(char::is_control),
            "a bench text out of bounds ({chars} characters): {t}"
        );
    }
    pool
}

/// The mean length of the pool's texts, in characters.
pub fn mean_chars(pool: &[String]) -> f64 {
    let total: usize = pool.iter().map(|t| t.chars().count()).sum();
    total as f64 / pool.len().max(1) as f64
}
