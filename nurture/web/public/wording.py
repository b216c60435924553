"""The candidate's pages (unsubscribe, preferences) in each language nurture speaks.

A page speaks the candidate's language, else the team's (``NURTURE_DEFAULT_LANGUAGE``), else
English. Strings are plain text with ``{name}`` placeholders; ``Words.say`` escapes them and
fills in the values, so no translation can inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from nurture.core import languages
from nurture.core.content import wording

PAGES: dict[str, dict[str, str]] = {
    "en": {
        "preferences_title": "Your email preferences",
        "for_line": "For {email}, from {company}'s talent team.",
        "erased_heading": "Your data has been deleted",
        "erased_text": "We removed your details from our talent network. We kept only a one-way "
        "fingerprint of your address, so that we never write to you again.",
        "delete_heading": "Delete all your data?",
        "delete_text": "We will remove your profile, your interview notes and the history of the "
        "mail we sent you. This cannot be undone, and we will not be able to contact you about "
        "future roles.",
        "delete_yes": "Yes, delete my data",
        "delete_no": "No, keep my data",
        "stay_heading": "Stay in our talent network?",
        "stay_text": "Confirm and we will keep your details, so we can tell you about roles that "
        "fit you. You can change what you receive below at any time.",
        "stay_button": "Yes, keep me in the talent network",
        "unsubscribed_notice": "You are unsubscribed: we send you no mail at all. To hear from "
        "us again, reply to any of our earlier emails.",
        "topics_heading": "What would you like to receive?",
        "topic_checkins": "Check-ins from your recruiter",
        "topic_newsletter": "Talent-network newsletter",
        "topic_job_alerts": "Job alerts for roles that fit you",
        "topics_button": "Save my topics",
        "pause_heading": "Need a break?",
        "paused_until": "Paused until {date}. We will not write to you before then.",
        "unpause_button": "Unpause now",
        "pause_text": "We will hold all mail for three months, then pick up where we left off.",
        "pause_button": "Pause everything for 3 months",
        "language_heading": "Language",
        "language_text": "Which language should we write to you in?",
        "language_default": "Whatever the team writes in",
        "language_button": "Save my language",
        "privacy_heading": "Privacy",
        "tracking_label": "Don't track when I open or click our emails",
        "tracking_button": "Save tracking choice",
        "download_button": "Download my data (JSON)",
        "delete_link": "Delete all my data…",
        "leave_heading": "Unsubscribe from everything",
        "leave_text": "No more check-ins, newsletters or job alerts.",
        "leave_button": "Unsubscribe from everything",
        "done_topics": "Your topics are saved.",
        "done_pause": "Paused. We will not write to you until the date below.",
        "done_unpause": "Welcome back: your mail is on again.",
        "done_tracking": "Saved.",
        "done_stay": "Thank you: you stay in our talent network.",
        "done_language": "Saved: we will write to you in English.",
        "bad_language": "Choose one of the languages in the list.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed_text": "{email} will not get any more mail from {company}'s talent team.",
        "unsubscribed_hint": "Changed your mind? Reply to any of our earlier emails and we will "
        "add you back.",
        "unsubscribe_heading": "Unsubscribe from {company}?",
        "unsubscribe_text": "We will stop sending mail to {email}: check-ins, newsletters and "
        "job alerts.",
        "unsubscribe_button": "Unsubscribe",
        "less_mail": "Only want less mail?",
        "less_mail_link": "Choose topics or pause for 3 months",
        "months": "January February March April May June July August September October "
        "November December",
        "date": "{day} {month} {year}",
        "welcome_title": "Welcome back",
        "welcome_text": "{email} will hear from {company}'s talent team again.",
        "welcome_hint": "You can choose what you receive, or pause it, on",
        "preferences_link": "your preference page.",
        "thanks_told": "Thank you for telling us.",
        "why_heading": "Would you tell us why?",
        "optional": "(optional)",
        "reason_too_many": "Too many emails",
        "reason_not_relevant": "The emails are not relevant to me",
        "reason_found_job": "I found a job",
        "reason_never_asked": "I never asked to hear from you",
        "reason_other": "Something else",
        "why_note": "Anything else? Only the talent team reads it.",
        "send": "Send",
        "changed_mind": "Changed your mind?",
        "resubscribe": "Resubscribe",
        "sunset_notice": "We stopped writing to you because you have not opened our mail for a "
        "long time. Say yes below and you will hear from us again.",
    },
    "de": {
        "preferences_title": "Ihre E-Mail-Einstellungen",
        "for_line": "Für {email}, vom Recruiting-Team von {company}.",
        "erased_heading": "Ihre Daten wurden gelöscht",
        "erased_text": "Wir haben Ihre Daten aus unserem Talent-Netzwerk entfernt. Behalten "
        "haben wir nur einen nicht umkehrbaren Fingerabdruck Ihrer Adresse, damit wir Ihnen nie "
        "wieder schreiben.",
        "delete_heading": "Alle Ihre Daten löschen?",
        "delete_text": "Wir entfernen Ihr Profil, die Notizen aus Ihren Gesprächen und den "
        "Verlauf der E-Mails, die wir Ihnen geschickt haben. Das lässt sich nicht rückgängig "
        "machen, und wir können Sie danach nicht mehr zu künftigen Stellen kontaktieren.",
        "delete_yes": "Ja, meine Daten löschen",
        "delete_no": "Nein, meine Daten behalten",
        "stay_heading": "Im Talent-Netzwerk bleiben?",
        "stay_text": "Bestätigen Sie, und wir behalten Ihre Daten, um Ihnen von passenden "
        "Stellen zu erzählen. Was Sie bekommen, können Sie unten jederzeit ändern.",
        "stay_button": "Ja, ich bleibe im Talent-Netzwerk",
        "unsubscribed_notice": "Sie sind abgemeldet: Wir schicken Ihnen keine E-Mails mehr. "
        "Wenn Sie wieder von uns hören möchten, antworten Sie auf eine unserer früheren E-Mails.",
        "topics_heading": "Was möchten Sie bekommen?",
        "topic_checkins": "Nachfragen von Ihrem Recruiter",
        "topic_newsletter": "Newsletter des Talent-Netzwerks",
        "topic_job_alerts": "Hinweise auf Stellen, die zu Ihnen passen",
        "topics_button": "Auswahl speichern",
        "pause_heading": "Eine Pause gefällig?",
        "paused_until": "Pausiert bis {date}. Bis dahin schreiben wir Ihnen nicht.",
        "unpause_button": "Pause jetzt beenden",
        "pause_text": "Wir halten alle E-Mails drei Monate lang zurück und machen dann dort "
        "weiter, wo wir aufgehört haben.",
        "pause_button": "Alles für 3 Monate pausieren",
        "language_heading": "Sprache",
        "language_text": "In welcher Sprache sollen wir Ihnen schreiben?",
        "language_default": "In der Sprache des Teams",
        "language_button": "Sprache speichern",
        "privacy_heading": "Datenschutz",
        "tracking_label": "Nicht erfassen, wenn ich Ihre E-Mails öffne oder Links anklicke",
        "tracking_button": "Auswahl speichern",
        "download_button": "Meine Daten herunterladen (JSON)",
        "delete_link": "Alle meine Daten löschen …",
        "leave_heading": "Von allem abmelden",
        "leave_text": "Keine Nachfragen, Newsletter oder Stellenhinweise mehr.",
        "leave_button": "Von allem abmelden",
        "done_topics": "Ihre Auswahl ist gespeichert.",
        "done_pause": "Pausiert. Bis zum unten genannten Datum schreiben wir Ihnen nicht.",
        "done_unpause": "Willkommen zurück: Ihre E-Mails sind wieder an.",
        "done_tracking": "Gespeichert.",
        "done_stay": "Danke: Sie bleiben in unserem Talent-Netzwerk.",
        "done_language": "Gespeichert: Wir schreiben Ihnen ab jetzt auf Deutsch.",
        "bad_language": "Wählen Sie eine der Sprachen aus der Liste.",
        "unsubscribe_title": "Abmelden",
        "unsubscribed_title": "Sie sind abgemeldet",
        "unsubscribed_text": "{email} bekommt keine E-Mails mehr vom Recruiting-Team von "
        "{company}.",
        "unsubscribed_hint": "Doch anders entschieden? Antworten Sie auf eine unserer früheren "
        "E-Mails, dann nehmen wir Sie wieder auf.",
        "unsubscribe_heading": "Von {company} abmelden?",
        "unsubscribe_text": "Wir schicken keine E-Mails mehr an {email}: keine Nachfragen, "
        "Newsletter oder Stellenhinweise.",
        "unsubscribe_button": "Abmelden",
        "less_mail": "Nur weniger E-Mails?",
        "less_mail_link": "Themen wählen oder 3 Monate pausieren",
        "months": "Januar Februar März April Mai Juni Juli August September Oktober November "
        "Dezember",
        "date": "{day}. {month} {year}",
        "welcome_title": "Willkommen zurück",
        "welcome_text": "{email} hört wieder vom Talent-Team von {company}.",
        "welcome_hint": "Was Sie bekommen oder ob Sie eine Pause machen, wählen Sie auf",
        "preferences_link": "Ihrer Einstellungsseite.",
        "thanks_told": "Danke, dass Sie es uns gesagt haben.",
        "why_heading": "Verraten Sie uns, warum?",
        "optional": "(freiwillig)",
        "reason_too_many": "Zu viele E-Mails",
        "reason_not_relevant": "Die E-Mails passen nicht zu mir",
        "reason_found_job": "Ich habe eine Stelle gefunden",
        "reason_never_asked": "Ich habe nie darum gebeten",
        "reason_other": "Etwas anderes",
        "why_note": "Sonst noch etwas? Nur das Talent-Team liest es.",
        "send": "Senden",
        "changed_mind": "Doch anders entschieden?",
        "resubscribe": "Wieder anmelden",
        "sunset_notice": "Wir haben Ihnen nicht mehr geschrieben, weil Sie unsere E-Mails lange "
        "nicht geöffnet haben. Sagen Sie unten Ja, und Sie hören wieder von uns.",
    },
    "fr": {
        "preferences_title": "Vos préférences e-mail",
        "for_line": "Pour {email}, de la part de l'équipe recrutement de {company}.",
        "erased_heading": "Vos données ont été supprimées",
        "erased_text": "Nous avons retiré vos informations de notre vivier de talents. Nous "
        "n'avons gardé qu'une empreinte irréversible de votre adresse, pour ne plus jamais vous "
        "écrire.",
        "delete_heading": "Supprimer toutes vos données ?",
        "delete_text": "Nous supprimerons votre profil, les notes de vos entretiens et "
        "l'historique des e-mails que nous vous avons envoyés. C'est définitif, et nous ne "
        "pourrons plus vous contacter pour de futurs postes.",
        "delete_yes": "Oui, supprimer mes données",
        "delete_no": "Non, garder mes données",
        "stay_heading": "Rester dans notre vivier de talents ?",
        "stay_text": "Confirmez, et nous garderons vos coordonnées pour vous parler des postes "
        "qui vous correspondent. Vous pouvez choisir ce que vous recevez ci-dessous, à tout "
        "moment.",
        "stay_button": "Oui, je reste dans le vivier",
        "unsubscribed_notice": "Vous êtes désabonné : nous ne vous envoyons plus aucun e-mail. "
        "Pour avoir de nouveau de nos nouvelles, répondez à l'un de nos e-mails précédents.",
        "topics_heading": "Que souhaitez-vous recevoir ?",
        "topic_checkins": "Des nouvelles de votre recruteur",
        "topic_newsletter": "La newsletter du vivier de talents",
        "topic_job_alerts": "Les postes qui vous correspondent",
        "topics_button": "Enregistrer mes choix",
        "pause_heading": "Besoin d'une pause ?",
        "paused_until": "En pause jusqu'au {date}. Nous ne vous écrirons pas d'ici là.",
        "unpause_button": "Reprendre maintenant",
        "pause_text": "Nous suspendons tous les e-mails pendant trois mois, puis nous reprenons "
        "là où nous nous étions arrêtés.",
        "pause_button": "Tout mettre en pause 3 mois",
        "language_heading": "Langue",
        "language_text": "Dans quelle langue souhaitez-vous que nous vous écrivions ?",
        "language_default": "Celle de l'équipe",
        "language_button": "Enregistrer ma langue",
        "privacy_heading": "Confidentialité",
        "tracking_label": "Ne pas suivre mes ouvertures ni mes clics dans vos e-mails",
        "tracking_button": "Enregistrer mon choix",
        "download_button": "Télécharger mes données (JSON)",
        "delete_link": "Supprimer toutes mes données…",
        "leave_heading": "Me désabonner de tout",
        "leave_text": "Plus de nouvelles, de newsletters ni d'offres de postes.",
        "leave_button": "Me désabonner de tout",
        "done_topics": "Vos choix sont enregistrés.",
        "done_pause": "C'est en pause. Nous ne vous écrirons pas avant la date ci-dessous.",
        "done_unpause": "Bon retour parmi nous : vos e-mails reprennent.",
        "done_tracking": "Enregistré.",
        "done_stay": "Merci : vous restez dans notre vivier de talents.",
        "done_language": "C'est enregistré : nous vous écrirons désormais en français.",
        "bad_language": "Choisissez l'une des langues de la liste.",
        "unsubscribe_title": "Se désabonner",
        "unsubscribed_title": "Vous êtes désabonné",
        "unsubscribed_text": "{email} ne recevra plus d'e-mails de l'équipe recrutement de "
        "{company}.",
        "unsubscribed_hint": "Vous avez changé d'avis ? Répondez à l'un de nos e-mails "
        "précédents et nous vous réinscrirons.",
        "unsubscribe_heading": "Se désabonner de {company} ?",
        "unsubscribe_text": "Nous n'enverrons plus d'e-mails à {email} : ni nouvelles, ni "
        "newsletters, ni offres de postes.",
        "unsubscribe_button": "Me désabonner",
        "less_mail": "Vous voulez juste moins d'e-mails ?",
        "less_mail_link": "Choisir vos sujets ou faire une pause de 3 mois",
        "months": "janvier février mars avril mai juin juillet août septembre octobre novembre "
        "décembre",
        "date": "{day} {month} {year}",
        "welcome_title": "Bon retour parmi nous",
        "welcome_text": "{email} recevra de nouveau des nouvelles de l'équipe recrutement de "
        "{company}.",
        "welcome_hint": "Choisissez ce que vous recevez, ou faites une pause, sur",
        "preferences_link": "votre page de préférences.",
        "thanks_told": "Merci de nous l'avoir dit.",
        "why_heading": "Pouvez-vous nous dire pourquoi ?",
        "optional": "(facultatif)",
        "reason_too_many": "Trop d'e-mails",
        "reason_not_relevant": "Les e-mails ne me concernent pas",
        "reason_found_job": "J'ai trouvé un emploi",
        "reason_never_asked": "Je n'ai jamais demandé à recevoir vos e-mails",
        "reason_other": "Autre chose",
        "why_note": "Autre chose à ajouter ? Seule l'équipe recrutement le lira.",
        "send": "Envoyer",
        "changed_mind": "Vous avez changé d'avis ?",
        "resubscribe": "Me réabonner",
        "sunset_notice": "Nous ne vous écrivons plus, car vous n'avez pas ouvert nos e-mails "
        "depuis longtemps. Dites oui ci-dessous et vous aurez de nouveau de nos nouvelles.",
    },
    "es": {
        "preferences_title": "Tus preferencias de correo",
        "for_line": "Para {email}, del equipo de selección de {company}.",
        "erased_heading": "Hemos borrado tus datos",
        "erased_text": "Hemos eliminado tus datos de nuestra red de talento. Solo guardamos una "
        "huella irreversible de tu dirección, para no volver a escribirte nunca.",
        "delete_heading": "¿Borrar todos tus datos?",
        "delete_text": "Eliminaremos tu perfil, las notas de tus entrevistas y el historial de "
        "los correos que te hemos enviado. No se puede deshacer, y ya no podremos contactarte "
        "para futuros puestos.",
        "delete_yes": "Sí, borrar mis datos",
        "delete_no": "No, conservar mis datos",
        "stay_heading": "¿Sigues en nuestra red de talento?",
        "stay_text": "Confírmalo y conservaremos tus datos para contarte sobre puestos que "
        "encajen contigo. Puedes cambiar lo que recibes aquí abajo cuando quieras.",
        "stay_button": "Sí, quiero seguir en la red de talento",
        "unsubscribed_notice": "Te has dado de baja: no te enviamos ningún correo. Si quieres "
        "volver a saber de nosotros, responde a cualquiera de nuestros correos anteriores.",
        "topics_heading": "¿Qué te gustaría recibir?",
        "topic_checkins": "Mensajes de tu reclutador",
        "topic_newsletter": "La newsletter de la red de talento",
        "topic_job_alerts": "Avisos de puestos que encajan contigo",
        "topics_button": "Guardar mis temas",
        "pause_heading": "¿Necesitas un descanso?",
        "paused_until": "En pausa hasta el {date}. No te escribiremos antes.",
        "unpause_button": "Quitar la pausa ahora",
        "pause_text": "Pausamos todos los correos durante tres meses y luego seguimos donde lo "
        "dejamos.",
        "pause_button": "Pausar todo durante 3 meses",
        "language_heading": "Idioma",
        "language_text": "¿En qué idioma quieres que te escribamos?",
        "language_default": "El que use el equipo",
        "language_button": "Guardar mi idioma",
        "privacy_heading": "Privacidad",
        "tracking_label": "No registrar cuándo abro vuestros correos o hago clic en ellos",
        "tracking_button": "Guardar mi elección",
        "download_button": "Descargar mis datos (JSON)",
        "delete_link": "Borrar todos mis datos…",
        "leave_heading": "Darme de baja de todo",
        "leave_text": "Ni mensajes, ni newsletters, ni avisos de puestos.",
        "leave_button": "Darme de baja de todo",
        "done_topics": "Hemos guardado tus temas.",
        "done_pause": "En pausa. No te escribiremos hasta la fecha de abajo.",
        "done_unpause": "¡Bienvenido de nuevo! Vuelves a recibir nuestros correos.",
        "done_tracking": "Guardado.",
        "done_stay": "Gracias: sigues en nuestra red de talento.",
        "done_language": "Guardado: a partir de ahora te escribiremos en español.",
        "bad_language": "Elige uno de los idiomas de la lista.",
        "unsubscribe_title": "Darte de baja",
        "unsubscribed_title": "Te has dado de baja",
        "unsubscribed_text": "{email} no recibirá más correos del equipo de selección de "
        "{company}.",
        "unsubscribed_hint": "¿Has cambiado de idea? Responde a cualquiera de nuestros correos "
        "anteriores y te volveremos a añadir.",
        "unsubscribe_heading": "¿Darte de baja de {company}?",
        "unsubscribe_text": "Dejaremos de enviar correos a {email}: ni mensajes, ni "
        "newsletters, ni avisos de puestos.",
        "unsubscribe_button": "Darme de baja",
        "less_mail": "¿Solo quieres recibir menos correos?",
        "less_mail_link": "Elige temas o haz una pausa de 3 meses",
        "months": "enero febrero marzo abril mayo junio julio agosto septiembre octubre "
        "noviembre diciembre",
        "date": "{day} de {month} de {year}",
        "welcome_title": "Qué bien que vuelvas",
        "welcome_text": "{email} volverá a recibir noticias del equipo de talento de {company}.",
        "welcome_hint": "Puedes elegir qué recibes, o hacer una pausa, en",
        "preferences_link": "tu página de preferencias.",
        "thanks_told": "Gracias por contárnoslo.",
        "why_heading": "¿Nos cuentas por qué?",
        "optional": "(opcional)",
        "reason_too_many": "Demasiados correos",
        "reason_not_relevant": "Los correos no tienen que ver conmigo",
        "reason_found_job": "He encontrado trabajo",
        "reason_never_asked": "Nunca pedí recibir vuestros correos",
        "reason_other": "Otra cosa",
        "why_note": "¿Algo más? Solo lo lee el equipo de talento.",
        "send": "Enviar",
        "changed_mind": "¿Has cambiado de opinión?",
        "resubscribe": "Volver a suscribirme",
        "sunset_notice": "Dejamos de escribirte porque hace mucho que no abres nuestros correos. "
        "Di que sí aquí abajo y volverás a saber de nosotros.",
    },
}


def _text(value: object) -> Markup:
    """Text escaped for HTML; apostrophes stay as written ("Don't", "l'équipe"): every string
    here goes into element text, never into a single-quoted attribute."""
    if isinstance(value, Markup):
        return value
    return Markup(str(escape(str(value))).replace("&#39;", "'"))


@dataclass(frozen=True)
class Words:
    """The pages' words in one language."""

    language: str

    def say(self, key: str, **values: object) -> Markup:
        """The text ``key`` with ``values`` filled in, every part escaped.

        An ``email`` value is set in its own span, so a long address breaks on a phone.
        """
        text = PAGES[self.language][key]
        filled = {name: _text(value) for name, value in values.items()}
        if "email" in filled:
            filled["email"] = Markup('<span class="email">{}</span>').format(filled["email"])
        return Markup(str(_text(text)).format(**filled))

    @staticmethod
    def strong(value: str) -> Markup:
        """``value`` in bold, for a value ``say`` fills in (a date)."""
        return Markup("<strong>{}</strong>").format(value)

    def __getitem__(self, key: str) -> Markup:
        return _text(PAGES[self.language][key])

    def date(self, moment: datetime) -> str:
        """A day as people write it in this language: "3 March 2027", "3. März 2027"."""
        month = PAGES[self.language]["months"].split()[moment.month - 1]
        return PAGES[self.language]["date"].format(day=moment.day, month=month, year=moment.year)


def words_for(candidate_language: str, default: str) -> Words:
    """The pages' words for a candidate reading ``candidate_language``."""
    return Words(wording.spoken(candidate_language, default))


def choices(current: str) -> list[tuple[str, str]]:
    """(code, name) of the languages a candidate may pick, their current one kept in the list."""
    listed = list(languages.NAMES.items())
    if current and current not in languages.NAMES:
        # "fr-CA" reads as the language it is a variant of, so nobody meets a bare code.
        known = languages.NAMES.get(languages.primary(current))
        listed.append((current, f"{known} ({current})" if known else current))
    return listed
