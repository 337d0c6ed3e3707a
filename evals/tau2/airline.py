"""tau2's airline domain tools, ported from tau2-bench `src/tau2/domains/airline/tools.py` onto the
plain-dict database in `db.json` (see `evals.tau2.db`).

The checks, the changes to the database and the error messages are tau2's, since the agent reads
those messages and the scorer compares database states; so are tau2's fixed "now", new
reservation ids and certificate ids. Tools return copies, never parts of the cached database.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, Field

from evals.tau2 import arithmetic
from evals.tau2.db import load_db, transaction
from tools.registry import tool

FlightType = Literal["round_trip", "one_way"]
CabinClass = Literal["business", "economy", "basic_economy"]
Insurance = Literal["yes", "no"]

# tau2 assumes a task makes at most three bookings and three certificates, and fixes the clock.
_NEW_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")
_NEW_CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")
_NOW = "2024-05-15T15:00:00"
_BAG_FEE = 50
_INSURANCE_FEE = 30

_AIRPORTS = (
    ("SFO", "San Francisco"),
    ("JFK", "New York"),
    ("LAX", "Los Angeles"),
    ("ORD", "Chicago"),
    ("DFW", "Dallas"),
    ("DEN", "Denver"),
    ("SEA", "Seattle"),
    ("ATL", "Atlanta"),
    ("MIA", "Miami"),
    ("BOS", "Boston"),
    ("PHX", "Phoenix"),
    ("IAH", "Houston"),
    ("LAS", "Las Vegas"),
    ("MCO", "Orlando"),
    ("EWR", "Newark"),
    ("CLT", "Charlotte"),
    ("MSP", "Minneapolis"),
    ("DTW", "Detroit"),
    ("PHL", "Philadelphia"),
    ("LGA", "LaGuardia"),
)


class FlightInfo(BaseModel):
    flight_number: str = Field(description="Flight number, such as 'HAT001'.")
    date: str = Field(description="The date for the flight in the format 'YYYY-MM-DD', such as '2024-05-01'.")


class Passenger(BaseModel):
    first_name: str = Field(description="Passenger's first name")
    last_name: str = Field(description="Passenger's last name")
    dob: str = Field(description="Date of birth in YYYY-MM-DD format")


class Payment(BaseModel):
    payment_id: str = Field(description="Unique identifier for the payment")
    amount: int = Field(description="Payment amount in dollars")


def _user(db: dict[str, Any], user_id: str) -> dict[str, Any]:
    if user_id not in db["users"]:
        raise ValueError(f"User {user_id} not found")
    return db["users"][user_id]


def _reservation(db: dict[str, Any], reservation_id: str) -> dict[str, Any]:
    if reservation_id not in db["reservations"]:
        raise ValueError(f"Reservation {reservation_id} not found")
    return db["reservations"][reservation_id]


def _flight(db: dict[str, Any], flight_number: str) -> dict[str, Any]:
    if flight_number not in db["flights"]:
        raise ValueError(f"Flight {flight_number} not found")
    return db["flights"][flight_number]


def _flight_on(db: dict[str, Any], flight_number: str, date: str) -> dict[str, Any]:
    flight = _flight(db, flight_number)
    if date not in flight["dates"]:
        raise ValueError(f"Flight {flight_number} not found on date {date}")
    return flight["dates"][date]


def _bookable(db: dict[str, Any], flight_number: str, date: str, cabin: str, seats: int) -> dict[str, Any]:
    """The flight's date record, if it can take `seats` more passengers in `cabin`."""
    on_date = _flight_on(db, flight_number, date)
    if on_date["status"] != "available":
        raise ValueError(f"Flight {flight_number} not available on date {date}")
    if on_date["available_seats"][cabin] < seats:
        raise ValueError(f"Not enough seats on flight {flight_number}")
    return on_date


def _direct_flights(
    db: dict[str, Any], date: str, origin: str | None, destination: str | None, leave_after: str | None = None
) -> list[dict[str, Any]]:
    results = []
    for flight in db["flights"].values():
        on_date = flight["dates"].get(date)
        if (
            (origin is None or flight["origin"] == origin)
            and (destination is None or flight["destination"] == destination)
            and on_date is not None
            and on_date["status"] == "available"
            and (leave_after is None or flight["scheduled_departure_time_est"] >= leave_after)
        ):
            results.append(
                {
                    "flight_number": flight["flight_number"],
                    "origin": flight["origin"],
                    "destination": flight["destination"],
                    "status": "available",
                    "scheduled_departure_time_est": flight["scheduled_departure_time_est"],
                    "scheduled_arrival_time_est": flight["scheduled_arrival_time_est"],
                    "date": None,
                    "available_seats": dict(on_date["available_seats"]),
                    "prices": dict(on_date["prices"]),
                }
            )
    return results


def _pay_for_update(user: dict[str, Any], payment_id: str, total_price: int) -> dict[str, Any] | None:
    """Charge (or, when negative, credit) a change to a stored payment method; the payment record,
    or None when nothing is owed."""
    if payment_id not in user["payment_methods"]:
        raise ValueError("Payment method not found")
    method = user["payment_methods"][payment_id]
    if method["source"] == "certificate":
        raise ValueError("Certificate cannot be used to update reservation")
    if method["source"] == "gift_card" and method["amount"] < total_price:
        raise ValueError("Gift card balance is not enough")
    if method["source"] == "gift_card":
        method["amount"] -= total_price
    return {"payment_id": payment_id, "amount": total_price} if total_price != 0 else None


@tool(side_effects=True)
def book_reservation(
    user_id: str,
    origin: str,
    destination: str,
    flight_type: FlightType,
    cabin: CabinClass,
    flights: list[FlightInfo],
    passengers: list[Passenger],
    payment_methods: list[Payment],
    total_baggages: int,
    nonfree_baggages: int,
    insurance: Insurance,
) -> dict:
    """Book a reservation.

    Args:
        user_id: The ID of the user to book the reservation such as 'sara_doe_496'`.
        origin: The IATA code for the origin city such as 'SFO'.
        destination: The IATA code for the destination city such as 'JFK'.
        flight_type: The type of flight such as 'one_way' or 'round_trip'.
        cabin: The cabin class such as 'basic_economy', 'economy', or 'business'.
        flights: An array of objects containing details about each piece of flight.
        passengers: An array of objects containing details about each passenger.
        payment_methods: An array of objects containing details about each payment method.
        total_baggages: The total number of baggage items to book the reservation.
        nonfree_baggages: The number of non-free baggage items to book the reservation.
        insurance: Whether the reservation has insurance.
    """
    # In-process callers (the scorer, tests) may pass plain dicts, as tau2 allows.
    flight_infos = [FlightInfo.model_validate(f) for f in flights]
    people = [Passenger.model_validate(p).model_dump() for p in passengers]
    payments = [Payment.model_validate(p).model_dump() for p in payment_methods]
    with transaction() as db:
        user = _user(db, user_id)
        reservation_id = next((r for r in _NEW_RESERVATION_IDS if r not in db["reservations"]), None)
        if reservation_id is None:
            raise ValueError("Too many reservations")
        reservation: dict[str, Any] = {
            "reservation_id": reservation_id,
            "user_id": user_id,
            "origin": origin,
            "destination": destination,
            "flight_type": flight_type,
            "cabin": cabin,
            "flights": [],
            "passengers": people,
            "payment_history": payments,
            "created_at": _NOW,
            "total_baggages": total_baggages,
            "nonfree_baggages": nonfree_baggages,
            "insurance": insurance,
        }
        total_price = 0
        booked = []
        for info in flight_infos:
            flight = _flight(db, info.flight_number)
            on_date = _bookable(db, info.flight_number, info.date, cabin, len(people))
            price = on_date["prices"][cabin]
            reservation["flights"].append(
                {
                    "origin": flight["origin"],
                    "destination": flight["destination"],
                    "flight_number": info.flight_number,
                    "date": info.date,
                    "price": price,
                }
            )
            booked.append(on_date)
            total_price += price * len(people)
        if insurance == "yes":
            total_price += _INSURANCE_FEE * len(people)
        total_price += _BAG_FEE * nonfree_baggages

        for payment in payments:
            payment_id = payment["payment_id"]
            if payment_id not in user["payment_methods"]:
                raise ValueError(f"Payment method {payment_id} not found")
            method = user["payment_methods"][payment_id]
            if method["source"] in {"gift_card", "certificate"} and method["amount"] < payment["amount"]:
                raise ValueError(f"Not enough balance in payment method {payment_id}")
        total_payment = sum(payment["amount"] for payment in payments)
        if total_payment != total_price:
            raise ValueError(f"Payment amount does not add up, total price is {total_price}, but paid {total_payment}")

        for payment in payments:
            method = user["payment_methods"][payment["payment_id"]]
            if method["source"] == "gift_card":
                method["amount"] -= payment["amount"]
            elif method["source"] == "certificate":  # a certificate is spent whole
                user["payment_methods"].pop(payment["payment_id"])
        for on_date in booked:
            on_date["available_seats"][cabin] -= len(people)
        db["reservations"][reservation_id] = reservation
        user["reservations"].append(reservation_id)
        return copy.deepcopy(reservation)


@tool
def calculate(expression: str) -> str:
    """Calculate the result of a mathematical expression.

    Args:
        expression: The mathematical expression to calculate, such as '2 + 2'. The expression can contain
            numbers, operators (+, -, *, /), parentheses, and spaces.
    """
    return arithmetic.calculate(expression)


@tool(side_effects=True)
def cancel_reservation(reservation_id: str) -> dict:
    """Cancel the whole reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
    """
    with transaction() as db:
        reservation = _reservation(db, reservation_id)
        history = reservation["payment_history"]
        history.extend([{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in history])
        reservation["status"] = "cancelled"
        # tau2 does not release the seats of a cancelled reservation either.
        return copy.deepcopy(reservation)


@tool
def get_reservation_details(reservation_id: str) -> dict:
    """Get the details of a reservation.

    Args:
        reservation_id: The reservation ID, such as '8JX2WO'.
    """
    return copy.deepcopy(_reservation(load_db(), reservation_id))


@tool
def get_user_details(user_id: str) -> dict:
    """Get the details of a user, including their reservations.

    Args:
        user_id: The user ID, such as 'sara_doe_496'.
    """
    return copy.deepcopy(_user(load_db(), user_id))


@tool
def list_all_airports() -> list[dict]:
    """Returns a list of all available airports."""
    return [{"iata": iata, "city": city} for iata, city in _AIRPORTS]


@tool
def search_direct_flight(origin: str, destination: str, date: str) -> list[dict]:
    """Search for direct flights between two cities on a specific date.

    Args:
        origin: The origin city airport in three letters, such as 'JFK'.
        destination: The destination city airport in three letters, such as 'LAX'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-01-01'.
    """
    return _direct_flights(load_db(), date, origin, destination)


@tool
def search_onestop_flight(origin: str, destination: str, date: str) -> list[list[dict]]:
    """Search for one-stop flights between two cities on a specific date.

    Args:
        origin: The origin city airport in three letters, such as 'JFK'.
        destination: The destination city airport in three letters, such as 'LAX'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'.
    """
    db = load_db()
    results = []
    for first in _direct_flights(db, date, origin, None):
        first["date"] = date
        # tau2's next-day rule, kept as is: May only, and the day is not zero-padded.
        date2 = f"2024-05-{int(date[-2:]) + 1}" if "+1" in first["scheduled_arrival_time_est"] else date
        for second in _direct_flights(
            db, date2, first["destination"], destination, leave_after=first["scheduled_arrival_time_est"]
        ):
            second["date"] = date2
            results.append([first, second])
    return results


@tool(side_effects=True)
def send_certificate(user_id: str, amount: int) -> str:
    """Send a certificate to a user. Be careful!

    Args:
        user_id: The ID of the user to book the reservation, such as 'sara_doe_496'.
        amount: The amount of the certificate to send.
    """
    with transaction() as db:
        user = _user(db, user_id)
        for payment_id in _NEW_CERTIFICATE_IDS:
            if payment_id not in user["payment_methods"]:
                # float, as tau2's Certificate model stores it
                user["payment_methods"][payment_id] = {
                    "source": "certificate",
                    "id": payment_id,
                    "amount": float(amount),
                }
                return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
        raise ValueError("Too many certificates")


@tool
def transfer_to_human_agents(summary: str) -> str:
    """Transfer the user to a human agent, with a summary of the user's issue.
    Only transfer if
     -  the user explicitly asks for a human agent
     -  given the policy and the available tools, you cannot solve the user's issue.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"


@tool(side_effects=True)
def update_reservation_baggages(
    reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
) -> dict:
    """Update the baggage information of a reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'
        total_baggages: The updated total number of baggage items included in the reservation.
        nonfree_baggages: The updated number of non-free baggage items included in the reservation.
        payment_id: The payment id stored in user profile, such as 'credit_card_7815826', 'gift_card_7815826',
            'certificate_7815826'.
    """
    with transaction() as db:
        reservation = _reservation(db, reservation_id)
        user = _user(db, reservation["user_id"])
        total_price = _BAG_FEE * max(0, nonfree_baggages - reservation["nonfree_baggages"])
        payment = _pay_for_update(user, payment_id, total_price)
        if payment is not None:
            reservation["payment_history"].append(payment)
        reservation["total_baggages"] = total_baggages
        reservation["nonfree_baggages"] = nonfree_baggages
        return copy.deepcopy(reservation)


@tool(side_effects=True)
def update_reservation_flights(
    reservation_id: str, cabin: CabinClass, flights: list[FlightInfo], payment_id: str
) -> dict:
    """Update the flight information of a reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        cabin: The cabin class of the reservation
        flights: An array of objects containing details about each piece of flight in the ENTIRE new
            reservation. Even if the a flight segment is not changed, it should still be included in the
            array.
        payment_id: The payment id stored in user profile, such as 'credit_card_7815826', 'gift_card_7815826',
            'certificate_7815826'.
    """
    flight_infos = [FlightInfo.model_validate(f) for f in flights]
    with transaction() as db:
        reservation = _reservation(db, reservation_id)
        user = _user(db, reservation["user_id"])
        seats = len(reservation["passengers"])
        total_price = 0
        new_flights = []
        for info in flight_infos:
            # A segment already booked in the same cabin keeps the price paid for it.
            kept = next(
                (
                    f
                    for f in reservation["flights"]
                    if f["flight_number"] == info.flight_number
                    and f["date"] == info.date
                    and cabin == reservation["cabin"]
                ),
                None,
            )
            if kept is not None:
                total_price += kept["price"] * seats
                new_flights.append(kept)
                continue
            flight = _flight(db, info.flight_number)
            on_date = _bookable(db, info.flight_number, info.date, cabin, seats)
            new_flight = {
                "flight_number": info.flight_number,
                "date": info.date,
                "price": on_date["prices"][cabin],
                "origin": flight["origin"],
                "destination": flight["destination"],
            }
            total_price += new_flight["price"] * seats
            new_flights.append(new_flight)
        total_price -= sum(f["price"] for f in reservation["flights"]) * seats
        payment = _pay_for_update(user, payment_id, total_price)
        if payment is not None:
            reservation["payment_history"].append(payment)
        reservation["flights"] = new_flights
        reservation["cabin"] = cabin
        # tau2 does not move seats between flights on a change either.
        return copy.deepcopy(reservation)


@tool(side_effects=True)
def update_reservation_passengers(reservation_id: str, passengers: list[Passenger]) -> dict:
    """Update the passenger information of a reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        passengers: An array of objects containing details about each passenger.
    """
    people = [Passenger.model_validate(p).model_dump() for p in passengers]
    with transaction() as db:
        reservation = _reservation(db, reservation_id)
        if len(people) != len(reservation["passengers"]):
            raise ValueError("Number of passengers does not match")
        reservation["passengers"] = people
        return copy.deepcopy(reservation)


@tool
def get_flight_status(flight_number: str, date: str) -> str:
    """Get the status of a flight.

    Args:
        flight_number: The flight number.
        date: The date of the flight.
    """
    return _flight_on(load_db(), flight_number, date)["status"]
