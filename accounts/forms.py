"""Forms of the accounts app."""

from django import forms


class PersonSearchForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=320)
